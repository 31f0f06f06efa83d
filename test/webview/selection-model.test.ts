// The selection panel's view model (pure): file rows, per-step and whole-answer frequencies,
// selected lines, citations ranked from the trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { citationsFromContext, citationsFromMentions, citationsFromTrace } from '../../src/ui/citations';
import { validateTrace } from '../../src/trace/validate';
import { buildView, fileRows, mergeRanges, selectedLines, stepFrequency } from '../../webview/selection/model';
import { sampleTrace } from './traceFixture';

test('the fixture is a valid trace', () => {
  assert.deepEqual(validateTrace(sampleTrace()), []);
});

test('file rows: every workspace file once, prompt parts left out, grouped by folder', () => {
  const rows = fileRows(sampleTrace());
  assert.deepEqual(rows.map((r) => [r.folder, r.file, r.blocks]), [
    ['.', 'README.md', [0, 1, 2]],
    ['lib', 'lib/index.js', [5]],
    ['src', 'src/main.ts', [2, 3]],
    ['src/util', 'src/util/math.ts', [4, 5]],
  ]);
});

test('per-step frequency: share of each layer\'s KV heads that touched the file', () => {
  const t = sampleTrace();
  const rows = fileRows(t);
  const math = rows.findIndex((r) => r.file === 'src/util/math.ts');
  // Step 0: head 0 picks blocks 1 and 3 (not math's 4, 5); head 1 picks block 1 + layer → layer 2 reaches block 3.
  assert.deepEqual(stepFrequency(t, rows, 0)[math], [0, 0, 0]);
  // Step 1: head 0 picks 4 and 5 at every layer; head 1 picks 4, 5, 5 (clamped).
  assert.deepEqual(stepFrequency(t, rows, 1)[math], [1, 1, 1]);
  const view = buildView(t);
  assert.equal(view.steps.length, 4);
  assert.equal(view.steps[0].scored, 6);
  assert.equal(view.steps[1].reused, 6);
  assert.equal(view.steps[1].deltaHat, null);
  assert.equal(view.steps[3].deltaHat, 0.04);
  // Whole answer: mean over the 4 steps.
  assert.deepEqual(view.total[math], [0.5, 0.5, 0.5]);
});

test('selected lines of a file at a step, merged; and over the whole answer', () => {
  const t = sampleTrace();
  assert.deepEqual(selectedLines(t, 'src/util/math.ts', 1), [{ startLine: 1, endLine: 8 }]);
  // Step 0: head 0 reads block 3 (lines 5-9), head 1 reaches block 2 (lines 1-4) at layer 1.
  assert.deepEqual(selectedLines(t, 'src/main.ts', 0), [{ startLine: 1, endLine: 9 }]);
  assert.deepEqual(selectedLines(t, 'lib/index.js', 0), []);
  assert.deepEqual(selectedLines(t, 'README.md', null), [{ startLine: 1, endLine: 6 }]);
  assert.deepEqual(mergeRanges([{ startLine: 8, endLine: 9 }, { startLine: 1, endLine: 3 }, { startLine: 4, endLine: 5 }]), [{ startLine: 1, endLine: 5 }, { startLine: 8, endLine: 9 }]);
});

test('citations rank files by how often their blocks were selected', () => {
  const c = citationsFromTrace(sampleTrace());
  assert.ok(c.length >= 3);
  assert.ok(c.every((x) => x.source === 'attention' && x.weight > 0 && x.weight <= 1));
  for (let i = 1; i < c.length; i++) assert.ok(c[i - 1].weight >= c[i].weight);
  assert.ok(!c.some((x) => x.file.startsWith('<')), 'prompt parts are not cited');
});

test('mention citations find files named in the answer', () => {
  const c = citationsFromMentions('See src/main.ts and math.ts; not main.tsx.', ['src/main.ts', 'src/util/math.ts', 'lib/index.js']);
  assert.deepEqual(c.map((x) => x.file), ['src/main.ts', 'src/util/math.ts']);
});

test('a trace that never chose between blocks ranks nothing; the context files are cited whole', () => {
  const dense = sampleTrace();
  for (const s of dense.steps) for (const l of s.layers) for (const h of l.heads) { h.source = 'dense'; h.blocks = [[0, s.contextBlocks]]; }
  assert.deepEqual(citationsFromTrace(dense), []);
  assert.deepEqual(citationsFromContext([{ path: 'a.ts', lines: 12 }, { path: 'b/c.md', lines: 0 }]), [
    { file: 'a.ts', startLine: 1, endLine: 12, weight: 0, source: 'context' },
    { file: 'b/c.md', startLine: 1, endLine: 1, weight: 0, source: 'context' },
  ]);
});
