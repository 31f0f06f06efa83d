// Per-file KV segments (native/model/segments.cc, docs/kv-cache.md): keys re-rotated to a new
// position equal keys prefilled there; an assembly whose every token is recomputed equals a full
// prefill, in any order of the segments; partial recomputation brings the logits closer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readModelSpec } from '../../src/model/loader';
import type { NativeModel } from '../../src/model/native';
import { FIXTURES, STORIES_DIR, loadAddon, maxAbsDiff, readJson } from './helpers';

const addon = loadAddon();

const MODELS = [
  { name: 'stories260K', dir: STORIES_DIR },
  ...['llama3', 'qwen2', 'mistral'].map((name) => ({ name, dir: join(FIXTURES, 'models', name) })),
];

interface Shape { layers: number; kvHeads: number; headDim: number; vocab: number }

function load(dir: string): { model: NativeModel; shape: Shape } {
  const spec = readModelSpec(dir, { kvBlockSize: 8, threads: 2, contextTokens: 256 });
  const config = readJson(join(dir, 'config.json'));
  const shape = { layers: spec.arch.numLayers, kvHeads: spec.arch.numKvHeads, headDim: spec.arch.headDim, vocab: spec.arch.vocabSize };
  assert.ok(config);
  return { model: addon.loadModel(spec), shape };
}

/** Deterministic token ids in [3, vocab) (no special tokens). */
function tokens(count: number, seed: number, vocab: number): number[] {
  const out: number[] = [];
  let x = seed >>> 0;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(3 + (x % (vocab - 3)));
  }
  return out;
}

/** Layer `layer`'s keys or values ([count][kvHeads][headDim]) out of an exportKv span. */
function part(span: Float32Array, shape: Shape, count: number, layer: number, which: 0 | 1): Float32Array {
  const size = count * shape.kvHeads * shape.headDim;
  return span.subarray((layer * 2 + which) * size, (layer * 2 + which + 1) * size);
}

function prefilled(model: NativeModel, ids: number[]): number {
  const seq = model.newSequence();
  model.forward(seq, Int32Array.from(ids), 'none');
  return seq;
}

/** The segment's KV as prefilled right after `head` in its own sequence. */
function segmentSpan(model: NativeModel, head: number[], segment: number[]): Float32Array {
  const seq = prefilled(model, [...head, ...segment]);
  const span = model.exportKv(seq, head.length, segment.length);
  model.freeSequence(seq);
  return span;
}

/** head, then each segment (prefilled after the head alone) appended with its keys re-rotated. */
function assembled(model: NativeModel, head: number[], segments: number[][]): number {
  const seq = prefilled(model, head);
  for (const s of segments) model.appendRotated(seq, segmentSpan(model, head, s), head.length);
  return seq;
}

function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** Mean over rows of KL(p_full || p_assembled) for [rows][vocab] logits. */
function meanKl(full: Float32Array, approx: Float32Array, vocab: number): number {
  const rows = full.length / vocab;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const p = softmax(full.subarray(r * vocab, (r + 1) * vocab)), q = softmax(approx.subarray(r * vocab, (r + 1) * vocab));
    for (let i = 0; i < vocab; i++) if (p[i] > 0) total += p[i] * Math.log(p[i] / Math.max(q[i], 1e-300));
  }
  return total / rows;
}

for (const { name, dir } of MODELS) {
  test(`${name}: a segment prefilled at a and re-rotated to b has the keys a prefill at b computes`, () => {
    const { model, shape } = load(dir);
    const segment = tokens(21, 7, shape.vocab);
    for (const [a, b] of [[5, 37], [40, 3], [9, 9]]) {
      const headA = tokens(a, 100 + a, shape.vocab), headB = tokens(b, 200 + b, shape.vocab);
      const moved = assembled(model, headB, [segment]);
      const at = model.exportKv(moved, b, segment.length);
      const direct = prefilled(model, [...headB, ...segment]);
      // Layer 0's keys and values depend on the token and its position only, not on what precedes it.
      const expected = model.exportKv(direct, b, segment.length);
      const spanA = segmentSpan(model, headA, segment);
      const movedA = prefilled(model, headB);
      model.appendRotated(movedA, spanA, a);
      const fromA = model.exportKv(movedA, b, segment.length);
      const keyError = maxAbsDiff(part(fromA, shape, segment.length, 0, 0), part(expected, shape, segment.length, 0, 0));
      assert.ok(keyError <= 2e-5, `a ${a} -> b ${b}: layer 0 keys differ by ${keyError}`);
      assert.deepEqual(part(fromA, shape, segment.length, 0, 1), part(expected, shape, segment.length, 0, 1), 'values are copied unchanged');
      // Moving within the same history is exact in every layer (to rounding).
      const allError = maxAbsDiff(at, expected);
      assert.ok(allError <= 2e-5, `same head, every layer: ${allError}`);
      for (const s of [moved, direct, movedA]) model.freeSequence(s);
    }
    model.dispose();
  });

  test(`${name}: segments assembled in any order with every token recomputed equal a full prefill`, () => {
    const { model, shape } = load(dir);
    const head = tokens(6, 1, shape.vocab);
    const segments = [tokens(13, 2, shape.vocab), tokens(30, 3, shape.vocab), tokens(9, 4, shape.vocab)];
    const question = tokens(7, 5, shape.vocab);
    for (const order of [[0, 1, 2], [2, 0, 1]]) {
      const repo = order.flatMap((i) => segments[i]);
      const full = prefilled(model, [...head, ...repo]);
      const expected = model.forward(full, Int32Array.from(question), 'all');

      const seq = assembled(model, head, order.map((i) => segments[i]));
      const positions = Int32Array.from(repo, (_, i) => head.length + i);
      model.recompute(seq, Int32Array.from(repo), positions);
      const kvError = maxAbsDiff(model.exportKv(seq, 0, head.length + repo.length), model.exportKv(full, 0, head.length + repo.length));
      assert.ok(kvError <= 1e-4, `order ${order}: KV differs from the full prefill by ${kvError}`);
      const got = model.forward(seq, Int32Array.from(question), 'all');
      const error = maxAbsDiff(got, expected);
      assert.ok(error <= 1e-4, `order ${order}: logits differ from the full prefill by ${error}`);
      // Without recomputation the segments never saw each other: the logits differ.
      const stale = assembled(model, head, order.map((i) => segments[i]));
      assert.ok(maxAbsDiff(model.forward(stale, Int32Array.from(question), 'all'), expected) > 1e-3);
      for (const s of [full, seq, stale]) model.freeSequence(s);
    }
    model.dispose();
  });
}

test('stories260K: recomputing the first tokens of each segment brings the question closer to the full prefill', () => {
  const { model, shape } = load(STORIES_DIR);
  const head = [1];
  const segments = [tokens(40, 11, shape.vocab), tokens(40, 12, shape.vocab), tokens(40, 13, shape.vocab), tokens(40, 14, shape.vocab)];
  const question = tokens(16, 15, shape.vocab);
  const repo = segments.flat();
  const full = prefilled(model, [...head, ...repo]);
  const expected = model.forward(full, Int32Array.from(question), 'all');
  const kl: number[] = [];
  for (const fraction of [0, 0.25, 0.5, 1]) {
    const seq = assembled(model, head, segments);
    const positions: number[] = [];
    // The first segment follows the head as it was prefilled: already exact.
    segments.forEach((s, i) => {
      if (i === 0) return;
      const start = head.length + i * 40;
      for (let t = 0; t < Math.ceil(fraction * s.length); t++) positions.push(start + t);
    });
    if (positions.length) model.recompute(seq, Int32Array.from(positions, (p) => repo[p - head.length]), Int32Array.from(positions));
    kl.push(meanKl(expected, model.forward(seq, Int32Array.from(question), 'all'), shape.vocab));
    model.freeSequence(seq);
  }
  assert.ok(kl[0] > 1e-4, `without recomputation the distributions differ (KL ${kl[0]})`);
  assert.ok(kl[1] < kl[0] && kl[2] < kl[1], `KL falls as more is recomputed: ${kl.join(', ')}`);
  assert.ok(kl[3] < 1e-8, `everything recomputed: KL ${kl[3]}`);
  model.dispose();
});

test('attentionMass: per position, summed over layers, heads and probe tokens; the sequence is left as it was', () => {
  const { model, shape } = load(STORIES_DIR);
  const heads = 8; // stories260K query heads
  const seq = prefilled(model, tokens(40, 3, shape.vocab));
  const before = model.exportKv(seq, 0, 40);
  const probe = Int32Array.from(tokens(5, 4, shape.vocab));
  const mass = model.attentionMass(seq, probe);
  assert.equal(mass.length, 40);
  assert.ok(mass.every((m) => m >= 0));
  const total = mass.reduce((a, b) => a + b, 0);
  // Each (layer, head, probe token) spreads 1 over the sequence and the probe tokens up to itself.
  assert.ok(total > 0 && total <= shape.layers * heads * probe.length + 1e-3, `total ${total}`);
  assert.equal(model.sequenceLength(seq), 40);
  assert.deepEqual(model.exportKv(seq, 0, 40), before);
  // Additive over probe tokens: probing [a, b] = probing [a] + probing [b] after a (causal attention).
  const a = probe.subarray(0, 2), b = probe.subarray(2);
  const first = model.attentionMass(seq, a);
  const extended = model.forkSequence(seq);
  model.forward(extended, a, 'none');
  const second = model.attentionMass(extended, b);
  let error = 0;
  for (let p = 0; p < 40; p++) error = Math.max(error, Math.abs(mass[p] - first[p] - second[p]));
  assert.ok(error <= 1e-4, `additivity ${error}`);
  model.dispose();
});

test('bad input: recompute positions out of order or outside the sequence, a span of the wrong size', () => {
  const { model, shape } = load(STORIES_DIR);
  const seq = prefilled(model, tokens(10, 1, shape.vocab));
  assert.throws(() => model.recompute(seq, Int32Array.of(5, 6), Int32Array.of(4, 4)), /increase strictly/);
  assert.throws(() => model.recompute(seq, Int32Array.of(5), Int32Array.of(10)), /inside the sequence/);
  assert.throws(() => model.recompute(seq, Int32Array.of(5), Int32Array.of(1, 2)), /same length/);
  assert.throws(() => model.recompute(seq, Int32Array.of(9999), Int32Array.of(1)), /outside the vocabulary/);
  assert.throws(() => model.appendRotated(seq, new Float32Array(7), 0), /whole number of positions/);
  // Recomputing a position shared with a fork copies the block: the fork keeps its KV.
  const fork = model.forkSequence(seq);
  const before = model.exportKv(fork, 0, 10);
  model.recompute(seq, Int32Array.of(3), Int32Array.of(2));
  assert.deepEqual(model.exportKv(fork, 0, 10), before);
  assert.notDeepEqual(model.exportKv(seq, 0, 10), before);
  // The recomputed block's key summary is the exact min/max of the keys it now holds (PrHS bounds rely on it).
  for (const layer of [0, shape.layers - 1]) {
    const block = model.kvBlockSummary(seq, layer, 0, 1);
    for (let d = 0; d < shape.headDim; d++) {
      let min = Infinity, max = -Infinity;
      for (let p = 0; p < 8; p++) {
        min = Math.min(min, block.keys[p * shape.headDim + d]);
        max = Math.max(max, block.keys[p * shape.headDim + d]);
      }
      assert.equal(block.min[d], Math.fround(min));
      assert.equal(block.max[d], Math.fround(max));
    }
  }
  model.dispose();
});
