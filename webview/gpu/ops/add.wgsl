// Residual connection, in place: x[t, i] += y[t, i].
// x [n, d], y [n, d]. Dispatch (ceil(d / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { d: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let t = gid.y;
  if (t >= step.n || i >= dims.d) { return; }
  x[t * dims.d + i] += y[t * dims.d + i];
}
