import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ATTENTION_DEFAULTS } from '../../src/trace/attention';
import { fromRanges, toRanges } from '../../src/trace/blockRanges';
import { readTrace, TraceError, writeTrace } from '../../src/trace/file';
import { summarize } from '../../src/trace/summary';
import { TRACE_FORMAT, TRACE_VERSION, type SelectionTrace, type TraceStep } from '../../src/trace/types';
import { validateTrace } from '../../src/trace/validate';

// A small well-formed trace: 2 layers, 2 KV heads, block size 4, a 10-token prompt over two files.
function sample(): SelectionTrace {
  const steps: TraceStep[] = [0, 1, 2].map((step) => {
    const position = 10 + step;
    const contextBlocks = Math.ceil((position + 1) / 4);
    return {
      step, position, tokenId: 7 + step, text: 'x', contextBlocks,
      layers: [0, 1].map((layer) => ({
        layer,
        heads: [0, 1].map((kvHead) => ({
          kvHead, blocks: toRanges([0, contextBlocks - 1]),
          source: step === 0 ? 'scored' as const : 'reused' as const,
          deltaHat: step === 0 ? 0.2 : null, delta: step === 0 ? 0.05 : null, expanded: 0,
        })),
      })),
    };
  });
  return {
    format: TRACE_FORMAT, version: TRACE_VERSION, createdAt: '2026-11-22T23:30:00Z',
    model: { name: 'test', numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8 },
    kvBlockSize: 4, attention: { ...ATTENTION_DEFAULTS, mode: 'prhs' }, promptTokens: 10,
    manifest: [
      { block: 0, tokenStart: 0, tokenEnd: 4, spans: [{ source: '<instructions>', startLine: 1, endLine: 1, tokenStart: 0, tokenEnd: 4 }] },
      { block: 1, tokenStart: 4, tokenEnd: 8, spans: [
        { source: 'src/a.ts', startLine: 1, endLine: 3, tokenStart: 4, tokenEnd: 6 },
        { source: 'src/b.ts', startLine: 1, endLine: 1, tokenStart: 6, tokenEnd: 8 }] },
      { block: 2, tokenStart: 8, tokenEnd: 10, spans: [{ source: 'src/b.ts', startLine: 1, endLine: 2, tokenStart: 8, tokenEnd: 10 }] },
    ],
    steps, summary: summarize(steps, 4),
  };
}

function problems(mutate: (t: SelectionTrace) => void): string[] {
  const t = sample();
  mutate(t);
  return validateTrace(JSON.parse(JSON.stringify(t))).map((p) => `${p.path} ${p.message}`);
}

test('a well-formed trace has no problems and round-trips through a file', () => {
  assert.deepEqual(validateTrace(sample()), []);
  const file = join(mkdtempSync(join(tmpdir(), 'trace-')), 't.json');
  writeTrace(file, sample());
  assert.deepEqual(readTrace(file), sample());
});

test('schema violations are named by path', () => {
  assert.match(problems((t) => { (t as { version: number }).version = 2; }).join('\n'), /\$\.version must be 1/);
  assert.match(problems((t) => { delete (t as Partial<SelectionTrace>).summary; }).join('\n'), /\$\.summary is missing/);
  assert.match(problems((t) => { (t.steps[0].layers[0].heads[0] as { source: string }).source = 'guessed'; }).join('\n'), /heads\[0\]\.source must be one of/);
  assert.match(problems((t) => { (t.steps[0] as unknown as Record<string, unknown>).extra = 1; }).join('\n'), /steps\[0\]\.extra is not allowed/);
  assert.match(problems((t) => { t.steps[1].layers[1].heads[1].deltaHat = 1.5; }).join('\n'), /deltaHat must be <= 1/);
  assert.match(problems((t) => { t.steps[0].layers[0].heads[0].blocks = [[1, 2, 3] as unknown as [number, number]]; }).join('\n'), /at most 2 items/);
});

test('semantic problems: manifest coverage, ranges, layer/head counts, δ above δ̂', () => {
  assert.match(problems((t) => { t.manifest.pop(); }).join('\n'), /has 2 blocks, the prompt needs 3/);
  assert.match(problems((t) => { t.manifest[1].spans[1].tokenStart = 7; }).join('\n'), /spans\[1\] must start at token 6/);
  assert.match(problems((t) => { t.manifest[2].spans[0].endLine = 0; }).join('\n'), /endLine must be >= 1/);
  assert.match(problems((t) => { t.steps[0].layers[0].heads[0].blocks = [[2, 3], [0, 1]]; }).join('\n'), /sorted, disjoint/);
  assert.match(problems((t) => { t.steps[0].layers[0].heads[0].blocks = [[0, 9]]; }).join('\n'), /past the context/);
  assert.match(problems((t) => { t.steps[0].layers.pop(); }).join('\n'), /needs 2 layers/);
  assert.match(problems((t) => { t.steps[0].layers[0].heads[0].delta = 0.3; }).join('\n'), /exceeds the certified bound/);
});

test('readTrace names the file on bad JSON and on an invalid trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trace-'));
  writeFileSync(join(dir, 'bad.json'), '{');
  assert.throws(() => readTrace(join(dir, 'bad.json')), (e: unknown) => e instanceof TraceError && /bad\.json: .*cannot read JSON/.test(e.message));
  writeFileSync(join(dir, 'wrong.json'), '{"format":"x"}');
  assert.throws(() => readTrace(join(dir, 'wrong.json')), /wrong\.json: not a valid selection trace/);
});

test('block ranges: compact and back', () => {
  assert.deepEqual(toRanges([5, 0, 1, 2, 9, 6, 2]), [[0, 3], [5, 7], [9, 10]]);
  assert.deepEqual(fromRanges([[0, 3], [5, 7]]), [0, 1, 2, 5, 6]);
});

test('summary: budget, passes and δ statistics from the steps', () => {
  const s = sample().summary;
  assert.equal(s.steps, 3);
  assert.equal(s.scoringPassesPerToken, 4 / 3); // step 0 scored 2 layers x 2 heads
  assert.equal(s.certifyPassesPerToken, 0);
  assert.equal(s.maxDeltaHat, 0.2);
  assert.equal(s.maxDelta, 0.05);
  // step 0: position 10, 3 blocks, reads block 0 (4) + block 2 (3 tokens) = 7 of 11
  const expected = (7 / 11 + (4 + 4) / 12 + (4 + 1) / 13) / 3;
  assert.ok(Math.abs(s.effectiveBudget - expected) < 1e-12);
});
