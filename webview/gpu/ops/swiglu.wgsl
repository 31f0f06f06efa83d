// SwiGLU gate, in place: gate[t, i] = silu(gate[t, i]) * up[t, i], silu(x) = x / (1 + exp(-x)).
// gate [n, f], up [n, f]. Dispatch (ceil(f / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { f: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> gate: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let t = gid.y;
  if (t >= step.n || i >= dims.f) { return; }
  let at = t * dims.f + i;
  let g = gate[at];
  gate[at] = g / (1.0 + exp(-g)) * up[at];
}
