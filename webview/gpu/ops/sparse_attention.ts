import code from './sparse_attention.wgsl';
import type { Dispatch, Kernels } from '../kernel';
import { MAX_HEAD_DIM } from './attention';

/**
 * out[heads, headDim] = attention of the newest position over the blocks `selection` lists per KV
 * head (u32: counts [kvHeads], then block ids [kvHeads, maxBlocks]). Decode steps only (one row).
 */
export function sparseAttention(
  k: Kernels,
  step: GPUBuffer,
  a: { q: GPUBuffer; kCache: GPUBuffer; vCache: GPUBuffer; selection: GPUBuffer; out: GPUBuffer; heads: number; kvHeads: number; headDim: number; blockSize: number; maxBlocks: number },
): Dispatch {
  if (a.headDim > MAX_HEAD_DIM) throw new Error(`head_dim ${a.headDim} is larger than the WebGPU attention kernel's ${MAX_HEAD_DIM}`);
  const dims = k.uniform(
    [{ u32: a.heads }, { u32: a.kvHeads }, { u32: a.headDim }, { f32: 1 / Math.sqrt(a.headDim) }, { u32: a.blockSize }, { u32: a.maxBlocks }],
    'sparse attention dims',
  );
  return k.dispatch('sparse_attention', code, [step, dims, a.q, a.kCache, a.vCache, a.selection, a.out], () => [a.heads, 1, 1]);
}
