// matmul.wgsl for 16-bit weights kept packed on the GPU (half the memory of f32), widened as read
// (half.wgsl, prepended): out[t, j] = sum_k x[t, k] * w[j, k]. x [n, k] f32, w [m, k] packed,
// out [n, m] f32. kind 0: IEEE half, 1: bfloat16. Dispatch (ceil(m / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { m: u32, k: u32, kind: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
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
        let e = row + i;
        acc += xs[i] * widen((w[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu, dims.kind);
      }
    }
    workgroupBarrier();
  }
  if (j < dims.m) { out[t * dims.m + j] = acc; }
}
