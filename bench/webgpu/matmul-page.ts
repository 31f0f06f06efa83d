// The browser side of bench/webgpu/matmul.ts: times the engine's tiled matmul (webview/gpu/ops/
// matmul.ts) against the first, untiled kernel (matmul-naive.wgsl) on the same buffers, and checks
// that both computed the same output.

import { acquireGpu } from '../../webview/gpu/device';
import { encodeDispatches, Kernels, perRow, type Dispatch } from '../../webview/gpu/kernel';
import { matmul } from '../../webview/gpu/ops/matmul';
import naive from './matmul-naive.wgsl';

export interface Shape {
  name: string;
  /** Rows (tokens in the step), output features, input features. */
  n: number;
  m: number;
  k: number;
}

export interface ShapeResult {
  name: string;
  n: number;
  m: number;
  k: number;
  /** Median time of the naive kernel over the tiled one's: > 1 means the tiled one is faster. */
  speedup: number;
  /** Largest |tiled - naive| relative to max(1, |naive|). */
  maxRelativeDifference: number;
}

function random(n: number, seed: number): Float32Array<ArrayBuffer> {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

export const gpuBench = {
  async matmul(shapes: Shape[], reps: number, dispatchesPerRep: number): Promise<{ adapter: string; results: ShapeResult[] }> {
    const gpu = await acquireGpu();
    const device = gpu.device;
    const k = new Kernels(device);
    const results: ShapeResult[] = [];
    for (const s of shapes) {
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      const buffer = (data: Float32Array<ArrayBuffer>) => {
        const b = device.createBuffer({ size: data.byteLength, usage });
        device.queue.writeBuffer(b, 0, data);
        return b;
      };
      const x = buffer(random(s.n * s.k, 1));
      const w = buffer(random(s.m * s.k, 2));
      const outs = [buffer(new Float32Array(s.n * s.m)), buffer(new Float32Array(s.n * s.m))];
      const step = k.uniform([{ u32: s.n }, { u32: 0 }], 'step');
      const dims = k.uniform([{ u32: s.m }, { u32: s.k }], 'dims');
      const kernels: Dispatch[] = [
        matmul(k, step, { x, w: { buffer: w, dtype: 'F32' }, out: outs[0], m: s.m, k: s.k }),
        k.dispatch('matmul_naive', naive, [step, dims, x, w, outs[1]], perRow(s.m)),
      ];
      const time = async (d: Dispatch) => {
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        for (let i = 0; i < dispatchesPerRep; i++) encodeDispatches(pass, [d], s.n);
        pass.end();
        const start = performance.now();
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
        return performance.now() - start;
      };
      for (const d of kernels) await time(d); // warm-up (pipeline compilation)
      const times: number[][] = [[], []];
      for (let r = 0; r < reps; r++) {
        for (let i = 0; i < kernels.length; i++) times[i].push(await time(kernels[i]));
      }
      const read = async (b: GPUBuffer) => {
        const staging = device.createBuffer({ size: b.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        const encoder = device.createCommandEncoder();
        encoder.copyBufferToBuffer(b, 0, staging, 0, b.size);
        device.queue.submit([encoder.finish()]);
        await staging.mapAsync(GPUMapMode.READ);
        const out = new Float32Array(staging.getMappedRange().slice(0));
        staging.destroy();
        return out;
      };
      const [tiled, reference] = [await read(outs[0]), await read(outs[1])];
      let maxRelativeDifference = 0;
      for (let i = 0; i < tiled.length; i++) {
        maxRelativeDifference = Math.max(maxRelativeDifference, Math.abs(tiled[i] - reference[i]) / Math.max(1, Math.abs(reference[i])));
      }
      results.push({ ...s, speedup: median(times[1]) / median(times[0]), maxRelativeDifference });
      for (const b of [x, w, ...outs, step, dims]) b.destroy();
    }
    device.destroy();
    return { adapter: gpu.description, results };
  },
};

declare global {
  interface Window {
    gpuBench: typeof gpuBench;
  }
}

Object.assign(window, { gpuBench });
