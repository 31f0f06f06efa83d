// RMSNorm over each row: out[t, i] = w[i] * x[t, i] / sqrt(mean_i(x[t, :]^2) + eps).
// x [n, d], w [d], out [n, d]. One workgroup per row: dispatch (n, 1, 1).

struct Step { n: u32, pos0: u32 }
struct Dims { d: u32, eps: f32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  if (t >= step.n) { return; }
  let base = t * dims.d;

  var sum = 0.0;
  for (var i = lid; i < dims.d; i += 64u) {
    let v = x[base + i];
    sum += v * v;
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(partial[0] / f32(dims.d) + dims.eps);

  for (var i = lid; i < dims.d; i += 64u) {
    out[base + i] = w[i] * (x[base + i] * scale);
  }
}
