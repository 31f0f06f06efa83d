// matmul.wgsl for a step of one row (decode): out[j] = sum_c x[c] * w[j, c]. x [1, k], w [m, k],
// out [1, m]. No weight is read twice, so there is nothing to tile: thread j reads its weight row
// directly while the row of x is staged in workgroup memory in pieces of PIECE.
// The weight reader (w, Dims, fn weight) is prepended as for matmul.wgsl. Dispatch (ceil(m / 64), 1).

struct Step { n: u32, pos0: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const PIECE = 256u;
var<workgroup> xs: array<f32, PIECE>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = wid.x * 64u + lid;
  let k = dims.k;
  var acc = 0.0;
  for (var k0 = 0u; k0 < k; k0 += PIECE) {
    let width = min(PIECE, k - k0);
    for (var i = lid; i < width; i += 64u) {
      xs[i] = x[k0 + i];
    }
    workgroupBarrier();
    if (j < dims.m) {
      let row = j * k + k0;
      for (var i = 0u; i < width; i++) {
        acc += xs[i] * weight(row + i);
      }
    }
    workgroupBarrier();
  }
  // Run only for steps of one row; the check also keeps `step` bound, as in every op.
  if (j < dims.m && step.n == 1u) { out[j] = acc; }
}
