// matmul.wgsl's weight reader for f32 weights.

struct Dims { m: u32, k: u32 }

@group(0) @binding(3) var<storage, read> w: array<f32>;

fn weight(e: u32) -> f32 {
  return w[e];
}
