import code from './rope.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';
import type { ModelArch } from '../../../src/model/native';

/** x[n, heads, headDim] rotated in place by the (cos, sin) table [n, headDim / 2, 2] of the step's positions. */
export function rope(k: Kernels, step: GPUBuffer, a: { x: GPUBuffer; table: GPUBuffer; heads: number; headDim: number }): Dispatch {
  const dims = k.uniform([{ u32: a.heads }, { u32: a.headDim }], 'rope dims');
  return k.dispatch('rope', code, [step, dims, a.table, a.x], perRow((a.heads * a.headDim) / 2));
}

const f32 = Math.fround;

/**
 * Inverse frequencies [headDim / 2] as transformers computes them in float32, including the
 * "llama3" rescaling of long wavelengths (transformers' _compute_llama3_parameters).
 */
export function ropeInverseFrequencies(arch: Pick<ModelArch, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const half = arch.headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(Math.pow(arch.ropeTheta, f32((2 * i) / arch.headDim))));
  const s = arch.ropeScaling;
  if (!s) return inv;
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = f32((2 * Math.PI) / inv[i]);
    const scaled = wavelen > lowFreqWavelen ? f32(inv[i] / s.factor) : inv[i];
    if (wavelen < highFreqWavelen || wavelen > lowFreqWavelen) {
      inv[i] = scaled;
    } else {
      const smooth = f32((f32(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
      inv[i] = f32(f32(f32(f32(1 - smooth) * scaled) / s.factor) + f32(smooth * scaled));
    }
  }
  return inv;
}

/**
 * (cos, sin) [n, headDim / 2, 2] for positions pos0 .. pos0 + n - 1. The angle is rounded to f32
 * as transformers rounds it (position times inverse frequency in float32); cos and sin are then
 * taken in double precision and rounded once.
 */
export function ropeTable(inv: Float32Array, pos0: number, n: number): Float32Array<ArrayBuffer> {
  const half = inv.length;
  const table = new Float32Array(n * half * 2);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < half; i++) {
      const angle = f32((pos0 + t) * inv[i]);
      table[(t * half + i) * 2] = Math.cos(angle);
      table[(t * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return table;
}
