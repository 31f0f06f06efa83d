// Real trained weights against Hugging Face transformers (../shared/models/stories260K).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readModelSpec } from '../../src/model/loader';
import { FIXTURES, STORIES_DIR, STORIES_GOLDEN, greedy, loadAddon, maxAbsDiff, readF32, readJson } from './helpers';

const addon = loadAddon();
const golden = readJson(STORIES_GOLDEN);
const VOCAB = 512;

test('greedy decoding of 64 tokens gives exactly transformers\' ids', () => {
  const model = addon.loadModel(readModelSpec(STORIES_DIR, { threads: 2 }));
  const { ids } = greedy(model, golden.input_ids, golden.input_ids.length + 64, VOCAB);
  assert.deepEqual(ids, golden.greedy_ids);
  model.dispose();
});

test('logits at positions 0 and 31 within 1e-4 of transformers', () => {
  const model = addon.loadModel(readModelSpec(STORIES_DIR));
  const logits = model.forward(model.newSequence(), Int32Array.from(golden.greedy_ids), 'all');
  const at = (pos: number) => logits.subarray(pos * VOCAB, pos * VOCAB + 8);
  assert.ok(maxAbsDiff(at(0), Float32Array.from(golden.logits_pos0_first8)) <= 1e-4);
  assert.ok(maxAbsDiff(at(31), Float32Array.from(golden.logits_pos31_first8)) <= 1e-4);
  for (let pos = 0; pos < 32; pos++) {
    const row = logits.subarray(pos * VOCAB, (pos + 1) * VOCAB);
    assert.equal(row.indexOf(Math.max(...row)), golden.logits_first32_argmax[pos], `argmax at ${pos}`);
  }
  model.dispose();
});

test('every position\'s logits within 1e-3 of transformers, in one forward and token by token', () => {
  const reference = readJson(join(FIXTURES, 'reference', 'stories260K.json'));
  const expected = readF32(join(FIXTURES, 'reference', 'stories260K-logits.f32'));
  const ids: number[] = reference.ids;
  assert.deepEqual(reference.logits_shape, [ids.length, VOCAB]);
  // A small block size so the sequence spans several KV blocks.
  const model = addon.loadModel(readModelSpec(STORIES_DIR, { kvBlockSize: 16 }));
  const batch = model.forward(model.newSequence(), Int32Array.from(ids), 'all');
  const batchError = maxAbsDiff(batch, expected);
  assert.ok(batchError <= 1e-3, `one forward: max |dlogit| ${batchError}`);

  const seq = model.newSequence();
  const stepwise = new Float32Array(ids.length * VOCAB);
  ids.forEach((id, pos) => stepwise.set(model.forward(seq, Int32Array.of(id), 'last'), pos * VOCAB));
  const stepError = maxAbsDiff(stepwise, expected);
  assert.ok(stepError <= 1e-3, `token by token: max |dlogit| ${stepError}`);
  model.dispose();
});

test('one thread and two give the same logits bit for bit, batched or not', () => {
  const ids = Int32Array.from(golden.greedy_ids);
  const run = (threads: number) => {
    const model = addon.loadModel(readModelSpec(STORIES_DIR, { threads }));
    const out = model.forward(model.newSequence(), ids, 'all');
    model.dispose();
    return out;
  };
  assert.equal(maxAbsDiff(run(1), run(2)), 0);
});
