// The engine webview as VS Code would load it: the real page (src/engine/webgpuHtml.ts, nonce CSP)
// running the real entry script (webview/gpu/main.ts), with a stand-in for the VS Code webview API.
// Requests arrive as window messages, replies leave through acquireVsCodeApi().postMessage.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Reply } from '../../src/engine/protocol';
import { MODEL_DIRS, openGpuPage, type GpuPage } from './gpu-harness';

describe('WebGPU engine webview page', () => {
  let gpu: GpuPage;
  const received: unknown[] = [];
  before(async () => {
    gpu = await openGpuPage();
    await gpu.page.exposeFunction('toHost', (m: unknown) => received.push(m));
    // A string, not a function: the test's own transpiler would add helpers the page lacks.
    await gpu.page.addInitScript('window.acquireVsCodeApi = () => ({ postMessage: (m) => window.toHost(m), getState: () => undefined, setState: () => {} });');
    const violations: string[] = [];
    gpu.page.on('console', (m) => { if (/Content Security Policy/.test(m.text())) violations.push(m.text()); });
    await gpu.page.goto(`${gpu.origin}/engine`);
    assert.deepEqual(violations, []);
  });
  after(async () => gpu?.close());

  const waitFor = async (pred: (m: Reply) => boolean): Promise<Reply> => {
    for (let i = 0; i < 600; i++) {
      const hit = (received as Reply[]).find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no such reply; got ${JSON.stringify(received.filter((m) => (m as Reply).type !== 'progress'))}`);
  };

  test('says it is ready, loads through fetch under its CSP, and generates the golden ids', async () => {
    await waitFor((m) => (m as { type: string }).type === 'engine-ready');
    const golden = JSON.parse(readFileSync(join(MODEL_DIRS.stories260K, '../golden-transformers.json'), 'utf8'));
    const send = (m: object) => gpu.page.evaluate((x) => window.postMessage(x, '*'), m);
    await send({ type: 'load', id: 1, modelDir: `${gpu.origin}/models/stories260K`, backend: 'auto', kvBlockSize: 32, contextTokens: 0, threads: 0 });
    const ready = await waitFor((m) => m.id === 1 && (m.type === 'ready' || m.type === 'error'));
    assert.equal(ready.type, 'ready', JSON.stringify(ready));
    await send({ type: 'generate', id: 2, prompt: { ids: golden.input_ids }, maxNewTokens: 16, sampling: { temperature: 0, topP: 1, seed: 0 }, stopAtEos: true });
    const done = await waitFor((m) => m.id === 2 && (m.type === 'generated' || m.type === 'error'));
    assert.equal(done.type, 'generated', JSON.stringify(done));
    if (done.type === 'generated') assert.deepEqual(done.result.ids, golden.greedy_ids.slice(golden.input_ids.length, golden.input_ids.length + 16));
    await send({ type: 'generate', id: 3 });
    const bad = await waitFor((m) => m.id === 3);
    assert.equal(bad.type === 'error' && bad.code, 'bad-request');
  });
});
