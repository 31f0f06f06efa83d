// Bias of a linear layer, in place: x[t, j] += b[j].
// x [n, m], b [m]. Dispatch (ceil(m / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { m: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  let t = gid.y;
  if (t >= step.n || j >= dims.m) { return; }
  x[t * dims.m + j] += b[j];
}
