// The WebGPU engine's first matmul, kept as the peer of bench/webgpu/matmul.ts: one output row per
// workgroup, each thread reading its own weight row straight from memory.
// Matrix times transposed weight (a linear layer without bias): out[t, j] = sum_k x[t, k] * w[j, k].
// x [n, k], w [m, k] (PyTorch's [out_features, in_features]), out [n, m].
// A workgroup computes 64 outputs of one row; the row of x is staged in workgroup memory in tiles.
// Dispatch (ceil(m / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { m: u32, k: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const TILE = 256u;
var<workgroup> xs: array<f32, TILE>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  if (t >= step.n) { return; }
  let j = wid.x * 64u + lid;
  let k = dims.k;

  var acc = 0.0;
  for (var k0 = 0u; k0 < k; k0 += TILE) {
    let width = min(TILE, k - k0);
    for (var i = lid; i < width; i += 64u) {
      xs[i] = x[t * k + k0 + i];
    }
    workgroupBarrier();
    if (j < dims.m) {
      let row = j * k + k0;
      for (var i = 0u; i < width; i++) {
        acc += xs[i] * w[row + i];
      }
    }
    workgroupBarrier();
  }
  if (j < dims.m) { out[t * dims.m + j] = acc; }
}
