import code from './embedding.wgsl';
import half from './half.wgsl';
import halfCode from './embedding_half.wgsl';
import { perRow, type Dispatch, type Kernels } from '../kernel';
import { halfKind, type GpuTensor } from '../tensor';

/** out[n, d] = table[ids[n], :]; table [vocab, d], f32 or packed 16-bit. */
export function embedding(k: Kernels, step: GPUBuffer, a: { ids: GPUBuffer; table: GpuTensor; out: GPUBuffer; d: number; vocab: number }): Dispatch {
  if (a.table.dtype === 'F32') {
    const dims = k.uniform([{ u32: a.d }, { u32: a.vocab }], 'embedding dims');
    return k.dispatch('embedding', code, [step, dims, a.ids, a.table.buffer, a.out], perRow(a.d));
  }
  const dims = k.uniform([{ u32: a.d }, { u32: a.vocab }, { u32: halfKind(a.table.dtype) }], 'embedding dims');
  return k.dispatch('embedding_half', half + halfCode, [step, dims, a.ids, a.table.buffer, a.out], perRow(a.d));
}
