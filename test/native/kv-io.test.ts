// Export and import of a sequence's KV span (native/kv/kv_io.h): the layout, the range checks,
// and a restored prefix that continues exactly as the original (logits compared bit for bit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readModelSpec } from '../../src/model/loader';
import type { NativeModel } from '../../src/model/native';
import { STORIES_DIR, loadAddon } from './helpers';

const addon = loadAddon();
const BLOCK = 8;
const LAYERS = 5;
const KV_HEADS = 4;
const HEAD_DIM = 8;
const PER_POSITION = LAYERS * 2 * KV_HEADS * HEAD_DIM;

const prefix = Int32Array.from([1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267]); // 2.5 blocks
const question = Int32Array.from([337, 410, 408, 419, 300, 301, 302]);

function load(): NativeModel {
  return addon.loadModel(readModelSpec(STORIES_DIR, { kvBlockSize: BLOCK, threads: 2 }));
}

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

test('exportKv: [layers][keys|values][positions][kvHeads][headDim], matching the cache blocks', () => {
  const model = load();
  const seq = model.newSequence();
  model.forward(seq, prefix, 'none');
  const span = model.exportKv(seq, 5, 10);
  assert.equal(span.length, 10 * PER_POSITION);
  for (const layer of [0, LAYERS - 1]) {
    for (const p of [0, 9]) {
      const pos = 5 + p;
      const block = model.kvBlockSummary(seq, layer, Math.floor(pos / BLOCK), 3);
      const want = block.keys.subarray((pos % BLOCK) * HEAD_DIM, (pos % BLOCK + 1) * HEAD_DIM);
      const at = layer * 2 * 10 * KV_HEADS * HEAD_DIM + p * KV_HEADS * HEAD_DIM + 3 * HEAD_DIM;
      assert.deepEqual(bits(span.subarray(at, at + HEAD_DIM)), bits(want), `layer ${layer} position ${pos}`);
    }
  }
  assert.throws(() => model.exportKv(seq, 15, 6), /past the end/);
  assert.throws(() => model.exportKv(99, 0, 1), /no sequence/);
  model.dispose();
});

test('importKv: a prefix restored in another model continues with bit-identical logits and summaries', () => {
  const source = load();
  const seq = source.newSequence();
  source.forward(seq, prefix, 'none');
  // Exported in two pieces, as the disk cache writes chunks.
  const pieces = [source.exportKv(seq, 0, 13), source.exportKv(seq, 13, prefix.length - 13)];
  const expected = source.forward(seq, question, 'all');

  const target = load();
  target.newSequence(); // an unrelated sequence first, so the restored blocks land elsewhere
  target.forward(0, Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 'none');
  const restored = target.newSequence();
  for (const piece of pieces) target.importKv(restored, piece);
  assert.equal(target.sequenceLength(restored), prefix.length);
  // Whole blocks only: the source's partly filled tail block now also holds the question.
  for (let block = 0; block < 2; block++) {
    const a = source.kvBlockSummary(seq, 2, block, 1);
    const b = target.kvBlockSummary(restored, 2, block, 1);
    assert.deepEqual(bits(b.min), bits(a.min));
    assert.deepEqual(bits(b.max), bits(a.max));
  }
  const got = target.forward(restored, question, 'all');
  assert.ok(bits(got).equals(bits(expected)), 'logits after import differ from the original sequence');

  assert.throws(() => target.importKv(restored, new Float32Array(PER_POSITION + 1)), /whole number of positions/);
  assert.equal(target.sequenceLength(restored), prefix.length + question.length);
  source.dispose();
  target.dispose();
});

test('importKv: out of blocks leaves the sequence as it was', () => {
  const model = addon.loadModel({ ...readModelSpec(STORIES_DIR, { kvBlockSize: BLOCK, threads: 1 }), kvBlocks: 2 });
  const seq = model.newSequence();
  assert.throws(() => model.importKv(seq, new Float32Array(3 * BLOCK * PER_POSITION)), /out of blocks/);
  assert.equal(model.sequenceLength(seq), 0);
  model.importKv(seq, new Float32Array(BLOCK * PER_POSITION));
  assert.equal(model.sequenceLength(seq), BLOCK);
  model.dispose();
});
