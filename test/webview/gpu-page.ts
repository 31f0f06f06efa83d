// The browser side of the WebGPU tests: loaded by gpu-harness.ts into headless Chromium, it
// exposes window.gpuTest for page.evaluate(). Model folders are served under /models/<name>/.

import type { Reply } from '../../src/engine/protocol';
import { acquireGpu, type Gpu } from '../../webview/gpu/device';
import { WebGpuEngine } from '../../webview/gpu/engine';
import { urlModelFiles } from '../../webview/gpu/files';
import { Kernels, encodeDispatches, type Dispatch } from '../../webview/gpu/kernel';
import { loadModel } from '../../webview/gpu/load';
import { add } from '../../webview/gpu/ops/add';
import { attention } from '../../webview/gpu/ops/attention';
import { biasAdd } from '../../webview/gpu/ops/bias_add';
import { encodeWiden } from '../../webview/gpu/ops/convert';
import { embedding } from '../../webview/gpu/ops/embedding';
import { matmul } from '../../webview/gpu/ops/matmul';
import { rmsnorm } from '../../webview/gpu/ops/rmsnorm';
import { rope } from '../../webview/gpu/ops/rope';
import { sparseAttention } from '../../webview/gpu/ops/sparse_attention';
import type { AttentionStep } from '../../webview/gpu/model';
import type { LayerKeys } from '../../webview/gpu/prhs/blocks';
import type { GpuTensor } from '../../webview/gpu/tensor';
import type { AttentionSettings } from '../../src/trace/attention';
import { swiglu } from '../../webview/gpu/ops/swiglu';

/** One op's inputs for gpuTest.op: sizes, the step's rows and first position, and named arrays. */
export interface OpCase {
  rows: number;
  pos0: number;
  sizes: Record<string, number>;
  /** f32 arrays by binding name; those in U32_ARRAYS are u32. */
  arrays: Record<string, number[]>;
}

const U32_ARRAYS = ['ids', 'raw', 'selection', 'packed'];

let gpu: Promise<Gpu> | undefined;
/** One device for the page's tests, acquired again once lost (as the webview's host would). */
async function sharedGpu(): Promise<Gpu> {
  const current = await (gpu ??= acquireGpu());
  if (current.lostReason() === null) return current;
  gpu = acquireGpu();
  return gpu;
}
let served: WebGpuEngine | undefined;

export const gpuTest = {
  /** Adapter description, or the reason there is none. */
  async adapter(): Promise<string> {
    try {
      return (await sharedGpu()).description;
    } catch (e) {
      return `unavailable: ${(e as Error).message}`;
    }
  },

  /**
   * Sends `requests` to a fresh WebGpuEngine (as the webview's message handler would) and returns
   * every reply once all are answered. With `cancelAfterTokens`, a cancel for the generate request
   * is sent when that many token replies have arrived.
   */
  async engine(requests: unknown[], options: { cancelAfterTokens?: number; loseDeviceAfterReady?: boolean } = {}): Promise<Reply[]> {
    const replies: Reply[] = [];
    let tokens = 0;
    let lost = false;
    const engine: WebGpuEngine = new WebGpuEngine({
      post: (reply) => {
        replies.push(reply);
        if (reply.type === 'token' && ++tokens === options.cancelAfterTokens) engine.receive({ type: 'cancel', id: 999, target: reply.id });
        // Destroying the device is how a test makes it lost (as a driver reset or GPU removal would).
        if (reply.type === 'ready' && options.loseDeviceAfterReady && !lost) {
          lost = true;
          void gpu?.then((g) => g.device.destroy());
        }
      },
      files: (modelDir) => urlModelFiles(modelDir),
      acquireGpu: sharedGpu,
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
    served = new WebGpuEngine({ post: (reply) => host.toHost(reply), files: (modelDir) => urlModelFiles(modelDir), acquireGpu: sharedGpu });
    host.toHost({ type: 'engine-ready' });
  },

  deliver(message: unknown): void {
    if (!served) throw new Error('serve() first');
    served.receive(message);
  },

  /** Runs one op once on `c` and returns every array after it ran (in-place ops change their input). */
  async op(name: string, c: OpCase): Promise<Record<string, number[]>> {
    const { device } = await sharedGpu();
    const k = new Kernels(device);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffers: Record<string, GPUBuffer> = {};
    for (const [key, values] of Object.entries(c.arrays)) {
      const data = U32_ARRAYS.includes(key) ? new Uint32Array(values) : new Float32Array(values);
      buffers[key] = device.createBuffer({ size: Math.max(4, data.byteLength), usage });
      device.queue.writeBuffer(buffers[key], 0, data);
    }
    const step = k.uniform([{ u32: c.rows }, { u32: c.pos0 }], 'step');
    // A weight given as f32 under its name, or as 16-bit values packed in `packed` (sizes.bf16: 0 or 1).
    const weight = (name: string): GpuTensor => (buffers.packed ? { buffer: buffers.packed, dtype: c.sizes.bf16 ? 'BF16' : 'F16' } : { buffer: buffers[name], dtype: 'F32' });
    const b = buffers;
    const z = c.sizes;
    const encoder = device.createCommandEncoder();
    const dispatch = (d: Dispatch) => {
      const pass = encoder.beginComputePass();
      encodeDispatches(pass, [d], c.rows);
      pass.end();
    };
    switch (name) {
      case 'embedding': dispatch(embedding(k, step, { ids: b.ids, table: weight('table'), out: b.out, d: z.d, vocab: z.vocab })); break;
      case 'rmsnorm': dispatch(rmsnorm(k, step, { x: b.x, w: b.w, out: b.out, d: z.d, eps: z.eps })); break;
      case 'matmul': dispatch(matmul(k, step, { x: b.x, w: weight('w'), out: b.out, m: z.m, k: z.k })); break;
      case 'bias_add': dispatch(biasAdd(k, step, { x: b.x, b: b.b, m: z.m })); break;
      case 'add': dispatch(add(k, step, { x: b.x, y: b.y, d: z.d })); break;
      case 'swiglu': dispatch(swiglu(k, step, { gate: b.gate, up: b.up, f: z.f })); break;
      case 'rope': dispatch(rope(k, step, { x: b.x, table: b.table, heads: z.heads, headDim: z.headDim })); break;
      case 'attention': dispatch(attention(k, step, { q: b.q, kCache: b.kCache, vCache: b.vCache, out: b.out, heads: z.heads, kvHeads: z.kvHeads, headDim: z.headDim })); break;
      case 'sparse_attention': dispatch(sparseAttention(k, step, {
        q: b.q, kCache: b.kCache, vCache: b.vCache, selection: b.selection, out: b.out,
        heads: z.heads, kvHeads: z.kvHeads, headDim: z.headDim, blockSize: z.blockSize, maxBlocks: z.maxBlocks,
      })); break;
      case 'convert': encodeWiden(k, encoder, { src: b.raw, dst: b.out, count: z.count, dtype: z.bf16 ? 'BF16' : 'F16' }); break;
      default: throw new Error(`unknown op ${name}`);
    }
    const out: Record<string, number[]> = {};
    const reads: [string, GPUBuffer][] = [];
    for (const [key, buffer] of Object.entries(buffers)) {
      const read = device.createBuffer({ size: buffer.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      encoder.copyBufferToBuffer(buffer, 0, read, 0, buffer.size);
      reads.push([key, read]);
    }
    device.queue.submit([encoder.finish()]);
    for (const [key, read] of reads) {
      await read.mapAsync(GPUMapMode.READ);
      const bytes = read.getMappedRange().slice(0);
      out[key] = Array.from(U32_ARRAYS.includes(key) ? new Uint32Array(bytes) : new Float32Array(bytes)).slice(0, c.arrays[key].length);
      read.destroy();
    }
    for (const buffer of Object.values(buffers)) buffer.destroy();
    return out;
  },

  /**
   * Greedy decoding with sparse attention after a dense prefill of `prompt`: per step the token,
   * the logits, the selection, and (for the reference check) every layer's q. Also returns every
   * layer's cached keys at the end [layers][positions, kvHeads, headDim].
   */
  async sparseDecode(model: string, prompt: number[], steps: number, settings: AttentionSettings, kvBlockSize: number) {
    const loaded = await loadModel(await sharedGpu(), urlModelFiles(`/models/${model}/`), { contextTokens: 0, kvBlockSize }, () => {});
    const m = loaded.model;
    try {
      let logits = await m.forward(prompt, 'last');
      const queries: number[] = [];
      const mirrors: LayerKeys[] = [];
      m.setAttention(settings, (layer, q, keys) => {
        queries.push(...q);
        mirrors[layer] = keys;
      });
      const ids: number[] = [];
      const allLogits: number[] = [];
      const selections: AttentionStep[] = [];
      for (let s = 0; s < steps; s++) {
        let next = 0;
        for (let i = 1; i < logits.length; i++) if (logits[i] > logits[next]) next = i;
        ids.push(next);
        logits = await m.forward([next], 'last');
        allLogits.push(...logits);
        selections.push(m.attentionStep()!);
      }
      const keys = mirrors.flatMap((k) => Array.from(k.keys.subarray(0, k.context * k.rowStride)));
      return { ids, logits: allLogits, selections, queries, keys };
    } finally {
      m.destroy();
    }
  },

  /** Logits [ids.length, vocab] of the model at every position, fed `chunk` rows per submission. */
  async logits(model: string, ids: number[], chunk: number): Promise<number[]> {
    const loaded = await loadModel(await sharedGpu(), urlModelFiles(`/models/${model}/`), { contextTokens: 0, maxChunk: chunk }, () => {});
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
