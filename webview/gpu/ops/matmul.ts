import code from './matmul.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';

/** out[n, m] = x[n, k] @ w[m, k]^T (a linear layer's weight as PyTorch stores it). */
export function matmul(k: Kernels, step: GPUBuffer, a: { x: GPUBuffer; w: GPUBuffer; out: GPUBuffer; m: number; k: number }): Dispatch {
  const dims = k.uniform([{ u32: a.m }, { u32: a.k }], 'matmul dims');
  return k.dispatch('matmul', code, [step, dims, a.x, a.w, a.out], perRow(a.m));
}
