import code from './matmul.wgsl';
import half from './half.wgsl';
import halfCode from './matmul_half.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';
import { halfKind, type GpuTensor } from '../tensor';

/** out[n, m] = x[n, k] @ w[m, k]^T (a linear layer's weight as PyTorch stores it; f32 or packed 16-bit). */
export function matmul(k: Kernels, step: GPUBuffer, a: { x: GPUBuffer; w: GpuTensor; out: GPUBuffer; m: number; k: number }): Dispatch {
  if (a.w.dtype === 'F32') {
    const dims = k.uniform([{ u32: a.m }, { u32: a.k }], 'matmul dims');
    return k.dispatch('matmul', code, [step, dims, a.x, a.w.buffer, a.out], perRow(a.m));
  }
  const dims = k.uniform([{ u32: a.m }, { u32: a.k }, { u32: halfKind(a.w.dtype) }], 'matmul dims');
  return k.dispatch('matmul_half', half + halfCode, [step, dims, a.x, a.w.buffer, a.out], perRow(a.m));
}
