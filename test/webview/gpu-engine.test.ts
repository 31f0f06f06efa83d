// The WebGPU engine through the protocol, as the webview runs it (headless Chromium, SwiftShader):
// greedy generation equal to transformers' goldens, prefix reuse, cancel, and every failure as a
// protocol error with a message that names the problem (never a crash).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Reply } from '../../src/engine/protocol';
import { MODEL_DIRS, openGpuPage, type GpuPage } from './gpu-harness';

const load = (modelDir: string, extra: object = {}) => ({ type: 'load', id: 1, modelDir, backend: 'webgpu', kvBlockSize: 16, contextTokens: 0, threads: 0, ...extra });
const generate = (id: number, ids: number[], maxNewTokens: number) => ({
  type: 'generate', id, prompt: { ids }, maxNewTokens, sampling: { temperature: 0, topP: 1, seed: 0 }, stopAtEos: true,
});

function goldenIds(model: string): { prompt: number[]; greedy: number[] } {
  if (model === 'stories260K') {
    const g = JSON.parse(readFileSync(join(MODEL_DIRS.stories260K, '../golden-transformers.json'), 'utf8'));
    return { prompt: g.input_ids, greedy: g.greedy_ids };
  }
  const g = JSON.parse(readFileSync(join(MODEL_DIRS[model], 'golden.json'), 'utf8'));
  return { prompt: g.prompt_ids, greedy: g.greedy_ids };
}

function only<T extends Reply['type']>(replies: Reply[], type: T, id?: number): Extract<Reply, { type: T }>[] {
  return replies.filter((r): r is Extract<Reply, { type: T }> => r.type === type && (id === undefined || r.id === id));
}

function errorOf(replies: Reply[], id: number): { code: string; message: string } {
  const errors = only(replies, 'error', id);
  assert.equal(errors.length, 1, `one error reply for request ${id}: ${JSON.stringify(replies)}`);
  return errors[0];
}

describe('WebGPU engine (protocol)', () => {
  let gpu: GpuPage;
  const stories = readFileSync(join(MODEL_DIRS.stories260K, 'model.safetensors'));
  before(async () => {
    gpu = await openGpuPage({
      extraFiles: {
        // A model too large for any adapter's buffer limits (the config alone decides it).
        'huge/config.json': JSON.stringify({ ...JSON.parse(readFileSync(join(MODEL_DIRS.stories260K, 'config.json'), 'utf8')), vocab_size: 40_000_000 }),
        // stories260K cut short inside its weights.
        'truncated/config.json': readFileSync(join(MODEL_DIRS.stories260K, 'config.json'), 'utf8'),
        'truncated/model.safetensors': stories.subarray(0, stories.length >> 1),
        'badjson/config.json': '{ "model_type": ',
        // Real weights, but a context whose KV cache no adapter can hold in one buffer.
        'longctx/config.json': JSON.stringify({ ...JSON.parse(readFileSync(join(MODEL_DIRS.stories260K, 'config.json'), 'utf8')), max_position_embeddings: 50_000_000 }),
        'longctx/model.safetensors': stories,
      },
    });
  });
  after(async () => gpu?.close());

  const run = (requests: unknown[], options: { cancelAfterTokens?: number; loseDeviceAfterReady?: boolean } = {}) =>
    gpu.page.evaluate(([r, o]) => window.gpuTest.engine(r, o), [requests, options] as const);

  for (const model of ['stories260K', 'llama3', 'qwen2', 'mistral']) {
    test(`${model}: greedy ids equal transformers' golden; a longer prompt reuses the cached prefix`, async () => {
      const { prompt, greedy } = goldenIds(model);
      const newTokens = greedy.length - prompt.length;
      const longer = greedy.slice(0, prompt.length + 10);
      const replies = await run([load(`/models/${model}/`), generate(2, prompt, newTokens), generate(3, longer, 8)]);
      assert.deepEqual(only(replies, 'error'), []);

      const ready = only(replies, 'ready', 1)[0];
      assert.equal(ready.info.backend, 'webgpu');
      assert.match(ready.info.backendReason, /^WebGPU on /);
      const loadProgress = only(replies, 'progress', 1);
      assert.ok(loadProgress.length > 0 && loadProgress.at(-1)!.done === loadProgress.at(-1)!.total, 'load progress reaches its total');

      const first = only(replies, 'generated', 2)[0].result;
      assert.deepEqual(first.ids, greedy.slice(prompt.length));
      assert.equal(first.finishReason, 'length');
      assert.equal(first.prefilledTokens, prompt.length);
      assert.deepEqual(only(replies, 'token', 2).map((t) => t.tokenId), first.ids, 'one token reply per generated id');

      // The cache holds the prompt and all generated tokens but the last, so only one token is new.
      const second = only(replies, 'generated', 3)[0].result;
      assert.deepEqual(second.ids, greedy.slice(longer.length, longer.length + 8));
      assert.equal(second.promptTokens, longer.length);
      assert.equal(second.prefilledTokens, 1);
    });
  }

  test('cancel stops a running generation', async () => {
    const replies = await run([load('/models/stories260K/'), generate(2, [1, 403, 407], 40)], { cancelAfterTokens: 3 });
    const result = only(replies, 'generated', 2)[0].result;
    assert.equal(result.finishReason, 'cancelled');
    assert.ok(result.ids.length >= 3 && result.ids.length < 40, `stopped soon after the cancel: ${result.ids.length} tokens`);
  });

  test('bad requests and bad models give protocol errors naming the problem', async (t) => {
    const replies = await run([
      { type: 'generate', id: 2 },                                           // malformed
      generate(3, [1, 2], 4),                                                // nothing loaded yet
      load('/models/stories260K/', { id: 4, backend: 'cpu' }),               // wrong backend
      load('/extra/missing/', { id: 5 }),                                    // no such folder
      load('/extra/badjson/', { id: 6 }),
      load('/extra/huge/', { id: 7 }),
      load('/extra/truncated/', { id: 8 }),
      load('/models/stories260K/', { id: 9, contextTokens: 8 }),
      generate(10, [1, 99999], 4),                                           // id outside the vocabulary
      generate(11, Array.from({ length: 9 }, () => 1), 4),                   // longer than the context
      { type: 'generate', id: 12, prompt: { text: 'Once' }, maxNewTokens: 1, sampling: { temperature: 0, topP: 1, seed: 0 }, stopAtEos: true },
      generate(13, [1, 403], 3),                                             // still works after all that
      load('/extra/longctx/', { id: 14 }),
    ]);
    assert.equal(errorOf(replies, 2).code, 'bad-request');
    assert.equal(errorOf(replies, 3).code, 'not-loaded');
    assert.equal(errorOf(replies, 4).code, 'backend-unavailable');
    const missing = errorOf(replies, 5);
    assert.equal(missing.code, 'model-missing');
    assert.equal(missing.message, `${gpu.origin}/extra/missing/config.json: missing: a model folder needs config.json`);
    assert.equal(errorOf(replies, 6).code, 'model-invalid');
    assert.match(errorOf(replies, 6).message, /badjson\/config\.json: not valid JSON/);
    const huge = errorOf(replies, 7);
    assert.equal(huge.code, 'backend-unavailable');
    assert.match(huge.message, /model\.embed_tokens\.weight.*(maxStorageBufferBindingSize|maxBufferSize)/);
    const truncated = errorOf(replies, 8);
    t.diagnostic(huge.message);
    t.diagnostic(truncated.message);
    assert.equal(truncated.code, 'model-invalid');
    assert.match(truncated.message, /truncated\/model\.safetensors: .*(truncated|outside the file)/);
    assert.equal(only(replies, 'ready', 9).length, 1);
    assert.equal(errorOf(replies, 10).code, 'bad-request');
    assert.equal(errorOf(replies, 11).code, 'prompt-too-long');
    assert.match(errorOf(replies, 12).message, /prompt\.ids/);
    assert.equal(only(replies, 'generated', 13)[0].result.ids.length, 3);
    const longContext = errorOf(replies, 14);
    assert.equal(longContext.code, 'backend-unavailable');
    assert.match(longContext.message, /layer 0 k cache for 50000000 positions .*contextTokens.*(maxStorageBufferBindingSize|maxBufferSize)/);
  });

  test('a lost device fails requests with backend-unavailable; a new load gets a new device', async () => {
    const replies = await run([load('/models/stories260K/'), generate(2, [1, 403], 3), load('/models/stories260K/', { id: 3 }), generate(4, [1, 403], 3)], {
      loseDeviceAfterReady: true,
    });
    const e = errorOf(replies, 2);
    assert.equal(e.code, 'backend-unavailable');
    assert.match(e.message, /WebGPU device was lost/);
    assert.equal(only(replies, "ready", 3).length, 1, JSON.stringify(replies.filter((r) => r.type !== "progress")));
    assert.equal(only(replies, 'generated', 4)[0].result.ids.length, 3);
  });

  test('without WebGPU the load fails with backend-unavailable and the reason', async () => {
    const plain = await openGpuPage({ gpu: false });
    try {
      const replies = await plain.page.evaluate((r) => window.gpuTest.engine(r), [load('/models/stories260K/')]);
      const e = errorOf(replies, 1);
      assert.equal(e.code, 'backend-unavailable');
      assert.match(e.message, /no WebGPU adapter|navigator\.gpu is missing/);
    } finally {
      await plain.close();
    }
  });
});
