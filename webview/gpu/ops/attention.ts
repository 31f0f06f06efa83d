import code from './attention.wgsl';
import type { Dispatch, Kernels } from '../kernel';

/** Longest head the kernel handles (four output dims per invocation, 64 invocations). */
export const MAX_HEAD_DIM = 256;

/**
 * out[n, heads, headDim] = softmax(q kᵀ / sqrt(headDim), causal) v over the cache's positions
 * 0 .. pos0 + n - 1; kCache, vCache [context, kvHeads, headDim].
 */
export function attention(
  k: Kernels,
  step: GPUBuffer,
  a: { q: GPUBuffer; kCache: GPUBuffer; vCache: GPUBuffer; out: GPUBuffer; heads: number; kvHeads: number; headDim: number },
): Dispatch {
  if (a.headDim > MAX_HEAD_DIM) throw new Error(`head_dim ${a.headDim} is larger than the WebGPU attention kernel's ${MAX_HEAD_DIM}`);
  const dims = k.uniform([{ u32: a.heads }, { u32: a.kvHeads }, { u32: a.headDim }, { f32: 1 / Math.sqrt(a.headDim) }], 'attention dims');
  return k.dispatch('attention', code, [step, dims, a.q, a.kCache, a.vCache, a.out], (rows) => [a.heads, rows, 1]);
}
