// matmul.wgsl's weight reader for 16-bit weights kept packed on the GPU (half the memory of f32),
// widened as read (half.wgsl, prepended). kind 0: IEEE half, 1: bfloat16.

struct Dims { m: u32, k: u32, kind: u32 }

@group(0) @binding(3) var<storage, read> w: array<u32>;

fn weight(e: u32) -> f32 {
  return widen((w[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu, dims.kind);
}
