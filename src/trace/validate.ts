// Checks a selection trace: first against TRACE_SCHEMA (shape), then the facts a schema cannot
// say (manifest covers the prompt block by block, block ranges sorted and inside the context,
// one entry per layer and KV head, δ̂ ≥ δ where both were measured). Returns every problem found,
// each with a JSON path, so a broken trace names what is wrong.
import { TRACE_SCHEMA, type JsonSchema } from './schema';
import type { BlockRanges, SelectionTrace } from './types';

export interface TraceProblem {
  path: string;
  message: string;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function resolve(ref: string): JsonSchema {
  const name = ref.replace('#/$defs/', '');
  const def = TRACE_SCHEMA.$defs?.[name];
  if (!def) throw new Error(`schema has no $defs/${name}`);
  return def;
}

/** Validates `v` against a JSON Schema subset (type, const, enum, min/max, properties, required,
 *  additionalProperties, items, prefixItems, minItems/maxItems, $ref into $defs). */
export function checkSchema(v: unknown, schema: JsonSchema, path: string, out: TraceProblem[]): void {
  if (schema.$ref) return checkSchema(v, resolve(schema.$ref), path, out);
  const t = typeOf(v);
  if (schema.type) {
    const allowed = Array.isArray(schema.type) ? schema.type : [schema.type];
    const ok = allowed.includes(t) || (t === 'integer' && allowed.includes('number'));
    if (!ok) { out.push({ path, message: `must be ${allowed.join(' or ')}, is ${t}` }); return; }
  }
  if ('const' in schema && v !== schema.const) out.push({ path, message: `must be ${JSON.stringify(schema.const)}` });
  if (schema.enum && !schema.enum.includes(v)) out.push({ path, message: `must be one of ${schema.enum.join(', ')}` });
  if (typeof v === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) out.push({ path, message: `must be >= ${schema.minimum}` });
    if (schema.maximum !== undefined && v > schema.maximum) out.push({ path, message: `must be <= ${schema.maximum}` });
  }
  if (t === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of schema.required ?? []) if (!(k in o)) out.push({ path: `${path}.${k}`, message: 'is missing' });
    for (const [k, child] of Object.entries(o)) {
      const s = schema.properties?.[k];
      if (s) checkSchema(child, s, `${path}.${k}`, out);
      else if (schema.additionalProperties === false) out.push({ path: `${path}.${k}`, message: 'is not allowed' });
    }
  }
  if (t === 'array') {
    const a = v as unknown[];
    if (schema.minItems !== undefined && a.length < schema.minItems) out.push({ path, message: `needs at least ${schema.minItems} items` });
    if (schema.maxItems !== undefined && a.length > schema.maxItems) out.push({ path, message: `allows at most ${schema.maxItems} items` });
    a.forEach((item, i) => {
      const s = schema.prefixItems?.[i] ?? schema.items;
      if (s) checkSchema(item, s, `${path}[${i}]`, out);
    });
  }
}

function checkRanges(r: BlockRanges, contextBlocks: number, path: string, out: TraceProblem[]): void {
  let prevEnd = -1;
  for (const [i, [a, b]] of r.entries()) {
    if (a >= b) out.push({ path: `${path}[${i}]`, message: `empty range [${a}, ${b})` });
    if (a <= prevEnd) out.push({ path: `${path}[${i}]`, message: 'ranges must be sorted, disjoint and not adjacent' });
    if (b > contextBlocks) out.push({ path: `${path}[${i}]`, message: `block ${b - 1} is past the context (${contextBlocks} blocks)` });
    prevEnd = b;
  }
}

function checkManifest(t: SelectionTrace, out: TraceProblem[]): void {
  const bs = t.kvBlockSize;
  const expected = Math.ceil(t.promptTokens / bs);
  if (t.manifest.length !== expected) out.push({ path: '$.manifest', message: `has ${t.manifest.length} blocks, the prompt needs ${expected}` });
  t.manifest.forEach((m, i) => {
    const p = `$.manifest[${i}]`;
    const start = i * bs;
    const end = Math.min(t.promptTokens, start + bs);
    if (m.block !== i || m.tokenStart !== start || m.tokenEnd !== end) {
      out.push({ path: p, message: `must be block ${i} covering tokens [${start}, ${end})` });
    }
    let at = m.tokenStart;
    m.spans.forEach((s, j) => {
      if (s.tokenStart !== at || s.tokenEnd <= s.tokenStart) out.push({ path: `${p}.spans[${j}]`, message: `must start at token ${at} and be non-empty` });
      if (s.endLine < s.startLine) out.push({ path: `${p}.spans[${j}]`, message: 'endLine is before startLine' });
      if (s.source.length === 0) out.push({ path: `${p}.spans[${j}].source`, message: 'is empty' });
      at = s.tokenEnd;
    });
    if (at !== m.tokenEnd) out.push({ path: `${p}.spans`, message: `cover tokens up to ${at}, the block ends at ${m.tokenEnd}` });
  });
}

function checkSteps(t: SelectionTrace, out: TraceProblem[]): void {
  t.steps.forEach((s, i) => {
    const p = `$.steps[${i}]`;
    if (s.step !== i) out.push({ path: `${p}.step`, message: `must be ${i}` });
    if (s.contextBlocks !== Math.ceil((s.position + 1) / t.kvBlockSize)) {
      out.push({ path: `${p}.contextBlocks`, message: `must be ceil((position + 1) / kvBlockSize) = ${Math.ceil((s.position + 1) / t.kvBlockSize)}` });
    }
    if (s.layers.length !== t.model.numLayers) out.push({ path: `${p}.layers`, message: `needs ${t.model.numLayers} layers` });
    s.layers.forEach((l, li) => {
      const lp = `${p}.layers[${li}]`;
      if (l.layer !== li) out.push({ path: `${lp}.layer`, message: `must be ${li}` });
      if (l.heads.length !== t.model.numKvHeads) out.push({ path: `${lp}.heads`, message: `needs ${t.model.numKvHeads} KV heads` });
      l.heads.forEach((h, hi) => {
        const hp = `${lp}.heads[${hi}]`;
        if (h.kvHead !== hi) out.push({ path: `${hp}.kvHead`, message: `must be ${hi}` });
        checkRanges(h.blocks, s.contextBlocks, `${hp}.blocks`, out);
        if (h.deltaHat !== null && h.delta !== null && h.delta > h.deltaHat + 1e-6) {
          out.push({ path: hp, message: `exact δ ${h.delta} exceeds the certified bound δ̂ ${h.deltaHat}` });
        }
      });
    });
  });
}

/** Every problem in `x` as a selection trace; an empty list means valid. */
export function validateTrace(x: unknown): TraceProblem[] {
  const out: TraceProblem[] = [];
  checkSchema(x, TRACE_SCHEMA, '$', out);
  if (out.length > 0) return out;
  const t = x as SelectionTrace;
  checkManifest(t, out);
  checkSteps(t, out);
  return out;
}
