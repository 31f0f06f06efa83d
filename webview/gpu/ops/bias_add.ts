import code from './bias_add.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';

/** x[n, m] += b[m] (Qwen2's q/k/v projection bias). */
export function biasAdd(k: Kernels, step: GPUBuffer, a: { x: GPUBuffer; b: GPUBuffer; m: number }): Dispatch {
  const dims = k.uniform([{ u32: a.m }], 'bias_add dims');
  return k.dispatch('bias_add', code, [step, dims, a.b, a.x], perRow(a.m));
}
