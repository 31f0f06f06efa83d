// Rotary position embedding in Hugging Face's rotate_half layout, in place:
//   x1 = x[.., i], x2 = x[.., i + half]  (i < half = headDim / 2)
//   x[.., i] = x1 * cos - x2 * sin;  x[.., i + half] = x2 * cos + x1 * sin
// x [n, heads, headDim]; table [n, half, 2] holds (cos, sin) of position pos0 + t, computed on
// the CPU in double precision (WGSL's cos and sin are too loose for 1e-3 logits).
// Dispatch (ceil(heads * half / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { heads: u32, headDim: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let half = dims.headDim / 2u;
  let t = gid.y;
  if (t >= step.n || gid.x >= dims.heads * half) { return; }
  let h = gid.x / half;
  let i = gid.x % half;
  let base = (t * dims.heads + h) * dims.headDim;
  let c = table[(t * half + i) * 2u];
  let s = table[(t * half + i) * 2u + 1u];
  let x1 = x[base + i];
  let x2 = x[base + i + half];
  x[base + i] = x1 * c - x2 * s;
  x[base + i + half] = x2 * c + x1 * s;
}
