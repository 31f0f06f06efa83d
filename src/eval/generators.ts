// Long-context task generators: passkey, key-value retrieval, variable tracking (RULER-style)
// and where-is-X-defined over a generated multi-file repository. Deterministic for a seed.
// Lengths are in tokens of the tokenizer given (countTokens): the same generator makes 2K, 8K,
// 16K ... tasks for any model; a context lands at most one filler unit below its target (where-defined:
// one file; it keeps two files at least, so a tiny target may be exceeded).
import { segmentText } from '../context/prompt';
import { SeededRandom } from '../model/sampling';
import type { EvalTask, TaskKind } from './tasks';

export type CountTokens = (text: string) => number;

export interface GenerateOptions {
  kinds: readonly TaskKind[];
  /** Context lengths in tokens. */
  lengths: readonly number[];
  /** Tasks per kind and length; their depths spread evenly over the context. */
  count: number;
  seed: number;
  countTokens: CountTokens;
}

const HAYSTACK = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ';

class Draw {
  private readonly r: SeededRandom;
  constructor(seed: number) { this.r = new SeededRandom(seed); }
  int(lo: number, hi: number): number { return lo + Math.floor(this.r.next() * (hi - lo + 1)); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(0, xs.length - 1)]; }
  hex(n: number): string { let s = ''; for (let i = 0; i < n; i++) s += '0123456789abcdef'[this.int(0, 15)]; return s; }
  upper(n: number): string { let s = ''; for (let i = 0; i < n; i++) s += String.fromCharCode(65 + this.int(0, 25)); return s; }
}

/** Units of filler repeated until `countTokens` of all units reaches the target; `needles` are
 *  inserted before the unit at their depth. Returns the text and where the first needle went. */
function fill(target: number, unit: (i: number) => string, needles: { depth: number; text: string }[], countTokens: CountTokens): string {
  const needleTokens = needles.reduce((n, x) => n + countTokens(x.text), 0);
  const sample = Array.from({ length: 8 }, (_, i) => unit(i)).join('');
  const perUnit = Math.max(1, countTokens(sample) / 8);
  let units = Math.max(1, Math.round((target - needleTokens) / perUnit));
  const build = (n: number) => {
    const parts = Array.from({ length: n }, (_, i) => unit(i));
    const sorted = [...needles].sort((a, b) => a.depth - b.depth);
    for (let k = sorted.length - 1; k >= 0; k--) parts.splice(Math.round(sorted[k].depth * n), 0, sorted[k].text);
    return parts.join('');
  };
  // One correction from a real count: estimates from a sample drift on long texts.
  const measured = countTokens(build(units));
  units = Math.max(1, Math.round(units * (target / measured)));
  let text = build(units);
  while (units > 1 && countTokens(text) > target) text = build(--units);
  return text;
}

function passkey(d: Draw, target: number, depth: number, count: CountTokens): Omit<EvalTask, 'id'> {
  const key = String(d.int(10000, 99999));
  const needle = `The pass key is ${key}. Remember it. ${key} is the pass key. `;
  const intro = 'There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize it. ';
  const context = intro + fill(target - count(intro), () => HAYSTACK, [{ depth, text: needle }], count);
  return { kind: 'passkey', context, question: 'What is the pass key?', answer: key, targetTokens: target, depth };
}

function kvRetrieval(d: Draw, target: number, depth: number, count: CountTokens): Omit<EvalTask, 'id'> {
  const uuid = () => `${d.hex(8)}-${d.hex(4)}-${d.hex(4)}-${d.hex(4)}-${d.hex(12)}`;
  const key = uuid();
  const value = uuid();
  const body = fill(target - count('JSON data:\n{\n}\n'), () => `  "${uuid()}": "${uuid()}",\n`, [{ depth, text: `  "${key}": "${value}",\n` }], count);
  return {
    kind: 'kv-retrieval', context: `JSON data:\n{\n${body}}\n`,
    question: `What is the value of the key "${key}" in the JSON data above?`, answer: value, targetTokens: target, depth,
  };
}

function variableTracking(d: Draw, target: number, depth: number, count: CountTokens): Omit<EvalTask, 'id'> {
  const hops = 4;
  const names = Array.from({ length: hops + 1 }, () => d.upper(5));
  const value = String(d.int(10000, 99999));
  // The chain starts at `depth` and its hops follow at even steps through the rest of the text.
  const needles = names.map((name, i) => ({
    depth: depth + ((1 - depth) * i) / (hops + 1),
    text: `VAR ${name} = ${i === 0 ? value : `VAR ${names[i - 1]}`}. `,
  }));
  // A distractor chain with another value.
  const other = Array.from({ length: 3 }, () => d.upper(5));
  other.forEach((name, i) => needles.push({ depth: (i + 0.5) / 3, text: `VAR ${name} = ${i === 0 ? String(d.int(10000, 99999)) : `VAR ${other[i - 1]}`}. ` }));
  const context = fill(target, () => HAYSTACK, needles, count);
  return { kind: 'variable-tracking', context, question: `What is the value of VAR ${names[hops]}?`, answer: value, targetTokens: target, depth };
}

// A repository of two files at least: tiny targets may overshoot.
const WORDS = ['parse', 'load', 'render', 'cache', 'token', 'block', 'widget', 'config', 'stream', 'merge', 'index', 'query',
  'buffer', 'layout', 'signal', 'schema', 'route', 'filter', 'vector', 'packet', 'ledger', 'sketch', 'anchor', 'window'];
const PACKAGES = ['core', 'io', 'net', 'ui', 'util', 'store', 'model', 'engine'];

/** A Python module with a few functions of generated names; returns its text and the names. */
function pythonModule(d: Draw, used: Set<string>): { text: string; names: string[] } {
  const names: string[] = [];
  const lines: string[] = [];
  for (let f = 0, n = d.int(1, 3); f < n; f++) {
    let name: string;
    do name = `${d.pick(WORDS)}_${d.pick(WORDS)}_${d.pick(WORDS)}`; while (used.has(name));
    used.add(name);
    names.push(name);
    const arg = d.pick(WORDS);
    lines.push(`def ${name}(${arg}):`, `    return [x for x in ${arg} if x]`, '');
  }
  return { text: lines.join('\n'), names };
}

function whereDefined(d: Draw, target: number, depth: number, count: CountTokens): Omit<EvalTask, 'id'> {
  const used = new Set<string>();
  const files: { path: string; text: string; names: string[] }[] = [];
  const paths = new Set<string>();
  const newFile = () => {
    let path: string;
    do path = `src/${d.pick(PACKAGES)}/${d.pick(WORDS)}_${d.pick(WORDS)}.py`; while (paths.has(path));
    paths.add(path);
    return { path, ...pythonModule(d, used) };
  };
  // Files are added while the sum of their token counts stays within the target (two at least).
  // A file that does not fit is dropped and another (maybe smaller) one tried, 8 times at most.
  let total = 0;
  for (let misses = 0; misses < 8;) {
    const f = newFile();
    const n = count(segmentText(f.path, f.text));
    if (files.length >= 2 && total + n > target) { misses++; continue; }
    files.push(f);
    total += n;
  }
  const context = files.map((f) => segmentText(f.path, f.text)).join('');
  const at = Math.min(files.length - 1, Math.floor(depth * files.length));
  const name = d.pick(files[at].names);
  return {
    kind: 'where-defined', context, question: `In which file is the function \`${name}\` defined? Answer with the file's path.`,
    answer: files[at].path, targetTokens: target, depth: files.length > 1 ? at / (files.length - 1) : 0,
  };
}

const MAKERS: Record<TaskKind, (d: Draw, target: number, depth: number, count: CountTokens) => Omit<EvalTask, 'id'>> = {
  'passkey': passkey, 'kv-retrieval': kvRetrieval, 'variable-tracking': variableTracking, 'where-defined': whereDefined,
};

export function generateTasks(o: GenerateOptions): EvalTask[] {
  const out: EvalTask[] = [];
  for (const kind of o.kinds) {
    for (const length of o.lengths) {
      for (let i = 0; i < o.count; i++) {
        const d = new Draw(o.seed * 1_000_003 + out.length);
        const depth = o.count === 1 ? 0.5 : i / (o.count - 1);
        out.push({ id: `${kind}-${length}-${i}`, ...MAKERS[kind](d, length, depth, o.countTokens) });
      }
    }
  }
  return out;
}
