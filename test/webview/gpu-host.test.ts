// WebGpuEngineClient (the extension host's side, src/engine/webgpu.ts) driving the engine in the
// page as the extension drives the hidden webview: text in, text out, equal to transformers' golden.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EngineError, type EngineClient } from '../../src/engine/client';
import { WebGpuEngineClient, type WebviewChannel } from '../../src/engine/webgpu';
import { MODEL_DIRS, openGpuPage, type GpuPage } from './gpu-harness';

describe('WebGpuEngineClient over a webview channel', () => {
  let gpu: GpuPage;
  let client: WebGpuEngineClient;
  let lastPost: Promise<unknown> = Promise.resolve();
  const golden = JSON.parse(readFileSync(join(MODEL_DIRS.stories260K, '../golden-transformers.json'), 'utf8'));

  before(async () => {
    gpu = await openGpuPage();
    const listeners = new Set<(m: unknown) => void>();
    await gpu.page.exposeFunction('toHost', (m: unknown) => listeners.forEach((l) => l(m)));
    const channel: WebviewChannel = {
      postMessage: (m) => (lastPost = gpu.page.evaluate((x) => window.gpuTest.deliver(x), m as object)),
      onDidReceiveMessage: (l) => {
        listeners.add(l);
        return { dispose: () => listeners.delete(l) };
      },
    };
    // The test server serves each model folder under /models/<name>/.
    const toUri = (dir: string) => `${gpu.origin}/models/${Object.keys(MODEL_DIRS).find((k) => MODEL_DIRS[k] === dir)}/`;
    client = new WebGpuEngineClient(channel, toUri);
    // Compile-time: it offers what the pipeline uses of the process engine's client.
    const sameFace: Pick<EngineClient, 'modelInfo' | 'load' | 'generate' | 'tokenize' | 'cancel' | 'dispose'> = client;
    void sameFace;
    await gpu.page.evaluate(() => window.gpuTest.serve());
  });
  after(async () => {
    await client?.dispose();
    await lastPost; // the shutdown message reaches the page before it closes
    await gpu?.close();
  });

  test('stories260K: text prompt in, greedy text equal to the golden out', async () => {
    const progress: number[] = [];
    const info = await client.load({ modelDir: MODEL_DIRS.stories260K }, (p) => progress.push(p.done / p.total));
    assert.equal(info.modelDir, MODEL_DIRS.stories260K, 'modelInfo names the folder, not the webview URL');
    assert.equal(info.backend, 'webgpu');
    assert.equal(progress.at(-1), 1);

    const pieces: string[] = [];
    const result = await client.generate({ prompt: { text: golden.prompt }, maxNewTokens: 64, onToken: (t) => pieces.push(t.text) }).result;
    assert.deepEqual(result.ids, golden.greedy_ids.slice(golden.input_ids.length));
    assert.equal(golden.prompt + result.text, golden.greedy_text);
    assert.equal(pieces.join(''), result.text);
    assert.deepEqual(await client.tokenize(golden.prompt, true), golden.input_ids);
  });

  test('an aborted signal cancels the generation', async () => {
    const abort = new AbortController();
    let tokens = 0;
    const result = await client.generate({
      prompt: { text: 'Once upon a time' }, maxNewTokens: 50, signal: abort.signal,
      onToken: () => { if (++tokens === 2) abort.abort(); },
    }).result;
    assert.equal(result.finishReason, 'cancelled');
    assert.ok(result.ids.length < 50);
  });

  test('engine errors reject with the protocol code', async () => {
    await assert.rejects(client.generate({ prompt: { ids: [1, 100000] }, maxNewTokens: 1 }).result, (e: unknown) => e instanceof EngineError && e.code === 'bad-request');
    await assert.rejects(client.load({ modelDir: '/nonexistent/model' }), (e: unknown) => e instanceof EngineError && e.code === 'model-missing');
  });
});
