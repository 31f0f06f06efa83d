// The paged KV cache through the model: copy-on-write forks, truncation, and the per-block key
// summaries (element-wise min/max of the keys written) that PrHS bounds scores with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readModelSpec } from '../../src/model/loader';
import type { NativeModel } from '../../src/model/native';
import { STORIES_DIR, loadAddon, maxAbsDiff } from './helpers';

const addon = loadAddon();
const BLOCK = 8;
const LAYERS = 5;
const KV_HEADS = 4;
const HEAD_DIM = 8;

const prefix = Int32Array.from([1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267]);  // 20: 2.5 blocks
const left = Int32Array.from([337, 410, 408, 419]);  // prefix + left: 24, exactly 3 blocks
const right = Int32Array.from([300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310]);

function load(): NativeModel {
  return addon.loadModel(readModelSpec(STORIES_DIR, { kvBlockSize: BLOCK, threads: 2 }));
}

function concat(...parts: Int32Array[]): Int32Array {
  return Int32Array.from(parts.flatMap((p) => Array.from(p)));
}

/** Last-position logits of a fresh sequence fed `ids` (prefix in one forward, then the rest). */
function fresh(model: NativeModel, head: Int32Array, tail: Int32Array): Float32Array {
  const seq = model.newSequence();
  model.forward(seq, head, 'none');
  const out = model.forward(seq, tail, 'last');
  model.freeSequence(seq);
  return out;
}

function checkSummaries(model: NativeModel, seq: number): void {
  const blocks = Math.ceil(model.sequenceLength(seq) / BLOCK);
  for (let layer = 0; layer < LAYERS; layer++) {
    for (let block = 0; block < blocks; block++) {
      for (let head = 0; head < KV_HEADS; head++) {
        const { keys, min, max } = model.kvBlockSummary(seq, layer, block, head);
        const fill = keys.length / HEAD_DIM;
        assert.equal(fill, Math.min(BLOCK, model.sequenceLength(seq) - block * BLOCK));
        for (let d = 0; d < HEAD_DIM; d++) {
          let lo = Infinity, hi = -Infinity;
          for (let p = 0; p < fill; p++) {
            lo = Math.min(lo, keys[p * HEAD_DIM + d]);
            hi = Math.max(hi, keys[p * HEAD_DIM + d]);
          }
          assert.equal(min[d], lo, `min, layer ${layer} block ${block} head ${head} dim ${d}`);
          assert.equal(max[d], hi, `max, layer ${layer} block ${block} head ${head} dim ${d}`);
        }
      }
    }
  }
}

test('fork shares every block; divergent appends copy the shared tail and leave the parent intact', () => {
  const model = load();
  const parent = model.newSequence();
  model.forward(parent, prefix, 'none');
  assert.equal(model.stats().kvBlocksInUse, 3);
  assert.equal(model.stats().backendDetail, '', 'the CPU backend has nothing to add');

  const child = model.forkSequence(parent);
  assert.equal(model.sequenceLength(child), prefix.length);
  assert.equal(model.stats().kvBlocksInUse, 3, 'a fork takes no blocks');
  for (let b = 0; b < 3; b++) assert.equal(model.kvBlockSummary(child, 0, b, 0).physicalBlock, model.kvBlockSummary(parent, 0, b, 0).physicalBlock);

  const childLogits = model.forward(child, left, 'last');       // 24 positions: copies block 2, no new block
  assert.equal(model.stats().kvBlocksInUse, 4);
  assert.equal(model.kvBlockSummary(child, 0, 0, 0).physicalBlock, model.kvBlockSummary(parent, 0, 0, 0).physicalBlock);
  assert.notEqual(model.kvBlockSummary(child, 0, 2, 0).physicalBlock, model.kvBlockSummary(parent, 0, 2, 0).physicalBlock);
  const parentLogits = model.forward(parent, right, 'last');    // 31 positions in its own blocks

  assert.equal(maxAbsDiff(childLogits, fresh(model, prefix, left)), 0);
  assert.equal(maxAbsDiff(parentLogits, fresh(model, prefix, right)), 0);
  checkSummaries(model, parent);
  checkSummaries(model, child);

  model.freeSequence(child);
  model.freeSequence(parent);
  assert.equal(model.stats().kvBlocksInUse, 0);
  model.dispose();
});

test('block summaries equal the min/max of the written keys, also after truncation inside a block', () => {
  const model = load();
  const seq = model.newSequence();
  model.forward(seq, concat(prefix, left), 'none');  // 24 positions
  checkSummaries(model, seq);
  model.truncateSequence(seq, 19);                   // keeps 3 of block 2's 8 positions
  assert.equal(model.sequenceLength(seq), 19);
  assert.equal(model.stats().kvBlocksInUse, 3);
  checkSummaries(model, seq);
  const again = model.forward(seq, right, 'last');
  assert.equal(maxAbsDiff(again, fresh(model, prefix.subarray(0, 19), right)), 0);
  checkSummaries(model, seq);
  model.dispose();
});

test('truncating a fork inside a shared block, then appending, keeps both summaries exact', () => {
  const model = load();
  const parent = model.newSequence();
  model.forward(parent, concat(prefix, left), 'none');  // 24
  const child = model.forkSequence(parent);
  model.truncateSequence(child, 12);                    // shares blocks 0 and 1 (1 partly)
  assert.equal(model.stats().kvBlocksInUse, 3);
  const childLogits = model.forward(child, right, 'last');
  checkSummaries(model, child);
  checkSummaries(model, parent);
  assert.equal(maxAbsDiff(childLogits, fresh(model, prefix.subarray(0, 12), right)), 0);
  const parentLogits = model.forward(parent, Int32Array.of(5), 'last');
  assert.equal(maxAbsDiff(parentLogits, fresh(model, concat(prefix, left), Int32Array.of(5))), 0);
  model.dispose();
});

test('a fork truncated inside a shared block whose other owner is freed first still gets an exact summary', () => {
  const model = load();
  const parent = model.newSequence();
  model.forward(parent, concat(prefix, left), 'none');  // 24
  const child = model.forkSequence(parent);
  model.truncateSequence(child, 12);
  model.freeSequence(parent);                           // block 1 is the child's alone now, its summary covers 8 keys
  assert.equal(model.stats().kvBlocksInUse, 2);
  const logits = model.forward(child, right, 'last');
  checkSummaries(model, child);
  assert.equal(maxAbsDiff(logits, fresh(model, prefix.subarray(0, 12), right)), 0);
  model.dispose();
});
