import tiled from './matmul.wgsl';
import f32Reader from './matmul_f32.wgsl';
import half from './half.wgsl';
import halfReader from './matmul_half.wgsl';
import oneRow from './matmul_row.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';
import { halfKind, type GpuTensor } from '../tensor';

/** Output tile of one workgroup of matmul.wgsl (its ROWS and COLS). */
const ROWS = 8;
const COLS = 64;

/**
 * out[n, m] = x[n, k] @ w[m, k]^T (a linear layer's weight as PyTorch stores it; f32 or packed
 * 16-bit): tiled over rows and columns, with a kernel of its own for steps of one row.
 */
export function matmul(k: Kernels, step: GPUBuffer, a: { x: GPUBuffer; w: GpuTensor; out: GPUBuffer; m: number; k: number }): Dispatch {
  const f32 = a.w.dtype === 'F32';
  const dims = k.uniform([{ u32: a.m }, { u32: a.k }, ...(f32 ? [] : [{ u32: halfKind(a.w.dtype) }])], 'matmul dims');
  const reader = f32 ? f32Reader : half + halfReader;
  const name = f32 ? 'matmul' : 'matmul_half';
  const buffers = [step, dims, a.x, a.w.buffer, a.out];
  return {
    ...k.dispatch(name, reader + tiled, buffers, (rows) => [Math.ceil(a.m / COLS), Math.ceil(rows / ROWS), 1]),
    oneRow: k.dispatch(`${name}_row`, reader + oneRow, buffers, perRow(a.m)),
  };
}
