import code from './rmsnorm.wgsl';
import type { Dispatch, Kernels } from '../kernel';

/** out[n, d] = w[d] * x[n, d] / rms(x[n, :]). */
export function rmsnorm(k: Kernels, step: GPUBuffer, a: { x: GPUBuffer; w: GPUBuffer; out: GPUBuffer; d: number; eps: number }): Dispatch {
  const dims = k.uniform([{ u32: a.d }, { f32: a.eps }], 'rmsnorm dims');
  return k.dispatch('rmsnorm', code, [step, dims, a.x, a.w, a.out], (rows) => [rows, 1, 1]);
}
