import code from './swiglu.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';

/** gate[n, f] = silu(gate[n, f]) * up[n, f]. */
export function swiglu(k: Kernels, step: GPUBuffer, a: { gate: GPUBuffer; up: GPUBuffer; f: number }): Dispatch {
  const dims = k.uniform([{ u32: a.f }], 'swiglu dims');
  return k.dispatch('swiglu', code, [step, dims, a.up, a.gate], perRow(a.f));
}
