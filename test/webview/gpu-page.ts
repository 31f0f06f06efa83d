// The browser side of the WebGPU tests: loaded by gpu-harness.ts into headless Chromium, it
// exposes window.gpuTest for page.evaluate(). Model folders are served under /models/<name>/.

import type { Reply } from '../../src/engine/protocol';
import { acquireGpu, type Gpu } from '../../webview/gpu/device';
import { WebGpuEngine } from '../../webview/gpu/engine';
import { urlModelFiles } from '../../webview/gpu/files';
import { loadModel } from '../../webview/gpu/load';

let gpu: Promise<Gpu> | undefined;
const device = () => (gpu ??= acquireGpu());
let served: WebGpuEngine | undefined;

export const gpuTest = {
  /** Adapter description, or the reason there is none. */
  async adapter(): Promise<string> {
    try {
      return (await device()).description;
    } catch (e) {
      return `unavailable: ${(e as Error).message}`;
    }
  },

  /**
   * Sends `requests` to a fresh WebGpuEngine (as the webview's message handler would) and returns
   * every reply once all are answered. With `cancelAfterTokens`, a cancel for the generate request
   * is sent when that many token replies have arrived.
   */
  async engine(requests: unknown[], options: { cancelAfterTokens?: number } = {}): Promise<Reply[]> {
    const replies: Reply[] = [];
    let tokens = 0;
    const engine: WebGpuEngine = new WebGpuEngine({
      post: (reply) => {
        replies.push(reply);
        if (reply.type === 'token' && ++tokens === options.cancelAfterTokens) engine.receive({ type: 'cancel', id: 999, target: reply.id });
      },
      files: (modelDir) => urlModelFiles(modelDir),
      acquireGpu: device,
    });
    for (const r of requests) engine.receive(r);
    await engine.idle();
    engine.receive({ type: 'shutdown', id: 1000 });
    await engine.idle();
    gpu = undefined; // shutdown destroyed the device
    return replies;
  },

  /**
   * Runs the engine the way webview/gpu/main.ts does, with the test's Node side as the extension
   * host: replies go to window.toHost (a Playwright binding), requests come in through deliver().
   */
  serve(): void {
    const host = window as unknown as { toHost(message: unknown): void };
    served = new WebGpuEngine({ post: (reply) => host.toHost(reply), files: (modelDir) => urlModelFiles(modelDir), acquireGpu: device });
    host.toHost({ type: 'engine-ready' });
  },

  deliver(message: unknown): void {
    if (!served) throw new Error('serve() first');
    served.receive(message);
  },

  /** Logits [ids.length, vocab] of the model at every position, fed `chunk` rows per submission. */
  async logits(model: string, ids: number[], chunk: number): Promise<number[]> {
    const loaded = await loadModel(await device(), urlModelFiles(`/models/${model}/`), { contextTokens: 0, maxChunk: chunk }, () => {});
    try {
      return Array.from(await loaded.model.forward(ids, 'all'));
    } finally {
      loaded.model.destroy();
    }
  },
};

declare global {
  interface Window {
    gpuTest: typeof gpuTest;
  }
}

Object.assign(window, { gpuTest });
