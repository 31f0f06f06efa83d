import code from './add.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';

/** x[n, d] += y[n, d] (residual connection). */
export function add(k: Kernels, step: GPUBuffer, a: { x: GPUBuffer; y: GPUBuffer; d: number }): Dispatch {
  const dims = k.uniform([{ u32: a.d }], 'add dims');
  return k.dispatch('add', code, [step, dims, a.y, a.x], perRow(a.d));
}
