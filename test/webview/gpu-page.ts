// The browser side of the WebGPU tests: loaded by gpu-harness.ts into headless Chromium, it
// exposes window.gpuTest for page.evaluate(). Model folders are served under /models/<name>/.

import { acquireGpu, type Gpu } from '../../webview/gpu/device';
import { urlModelFiles } from '../../webview/gpu/files';
import { loadModel } from '../../webview/gpu/load';

let gpu: Promise<Gpu> | undefined;
const device = () => (gpu ??= acquireGpu());

export const gpuTest = {
  /** Adapter description, or the reason there is none. */
  async adapter(): Promise<string> {
    try {
      return (await device()).description;
    } catch (e) {
      return `unavailable: ${(e as Error).message}`;
    }
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
