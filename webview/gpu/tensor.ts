/// <reference types="@webgpu/types" />
// A weight on the GPU: f32, or 16-bit values kept packed two per u32 (matrices only; the ops that
// read them widen as they go, so results equal the f32 path's exactly).

export type GpuDtype = 'F32' | 'F16' | 'BF16';

export interface GpuTensor {
  buffer: GPUBuffer;
  dtype: GpuDtype;
}

/** The `kind` uniform of the 16-bit shader variants (half.wgsl). */
export function halfKind(dtype: GpuDtype): number {
  return dtype === 'F16' ? 0 : 1;
}
