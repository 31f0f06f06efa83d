import code from './embedding.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';

/** out[n, d] = table[ids[n], :]; table [vocab, d]. */
export function embedding(k: Kernels, step: GPUBuffer, a: { ids: GPUBuffer; table: GPUBuffer; out: GPUBuffer; d: number; vocab: number }): Dispatch {
  const dims = k.uniform([{ u32: a.d }, { u32: a.vocab }], 'embedding dims');
  return k.dispatch('embedding', code, [step, dims, a.ids, a.table, a.out], perRow(a.d));
}
