import half from './half.wgsl';
import code from './convert.wgsl';
import type { Kernels } from '../kernel';
import { halfKind } from '../tensor';

export type Narrow = 'F16' | 'BF16';

/**
 * Encodes the widening of `count` 16-bit values in `src` (packed two per u32) into f32 `dst`.
 * The caller submits `encoder` and may destroy `src` once that work is done.
 */
export function encodeWiden(k: Kernels, encoder: GPUCommandEncoder, a: { src: GPUBuffer; dst: GPUBuffer; count: number; dtype: Narrow }): GPUBuffer {
  const dims = k.uniform([{ u32: a.count }, { u32: halfKind(a.dtype) }], 'convert dims');
  const d = k.dispatch('convert', half + code, [dims, a.src, a.dst], () => [1, 1, 1]);
  const groups = Math.ceil(Math.ceil(a.count / 2) / 64);
  const x = Math.min(groups, 65535);
  const y = Math.ceil(groups / x);
  const pass = encoder.beginComputePass({ label: 'widen weights' });
  pass.setPipeline(d.pipeline);
  pass.setBindGroup(0, d.bindGroup);
  pass.dispatchWorkgroups(x, y, 1);
  pass.end();
  return dims;
}
