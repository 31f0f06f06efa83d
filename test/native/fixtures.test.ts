// Random-weight models at real architectures' shapes, made by tools/make_goldens.py with
// transformers: Llama 3 (bf16, llama3 RoPE scaling, untied), Qwen2 (fp16, q/k/v bias, tied),
// Mistral (fp32, sharded, head_dim unlike hidden/heads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readModelSpec } from '../../src/model/loader';
import { FIXTURES, greedy, loadAddon, maxAbsDiff, readF32, readJson } from './helpers';

const addon = loadAddon();

for (const name of ['llama3', 'qwen2', 'mistral']) {
  const dir = join(FIXTURES, 'models', name);

  test(`${name}: greedy ids identical to transformers, logits within 1e-3 at every position`, () => {
    const golden = readJson(join(dir, 'golden.json'));
    const expected = readF32(join(dir, golden.logits_file));
    const [positions, vocab] = golden.logits_shape;
    assert.equal(positions, golden.greedy_ids.length);
    assert.ok(positions >= 64);
    const model = addon.loadModel(readModelSpec(dir, { kvBlockSize: 16, threads: 2 }));

    const decoded = greedy(model, golden.prompt_ids, golden.greedy_ids.length, vocab);
    assert.deepEqual(decoded.ids, golden.greedy_ids);
    const decodeError = maxAbsDiff(decoded.logits, expected.subarray(0, decoded.logits.length));
    assert.ok(decodeError <= 1e-3, `token by token: max |dlogit| ${decodeError}`);

    const batch = model.forward(model.newSequence(), Int32Array.from(golden.greedy_ids), 'all');
    const batchError = maxAbsDiff(batch, expected);
    assert.ok(batchError <= 1e-3, `one forward: max |dlogit| ${batchError}`);
    model.dispose();
  });
}
