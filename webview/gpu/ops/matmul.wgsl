// Matrix times transposed weight (a linear layer without bias): out[t, j] = sum_c x[t, c] * w[j, c].
// x [n, k], w [m, k] (PyTorch's [out_features, in_features]), out [n, m].
// Tiled: a workgroup of 64 threads computes an output tile of ROWS rows by 64 columns. Per step
// of TILE_K along k, the x tile [ROWS, TILE_K] and the weight tile [64, TILE_K] are staged in
// workgroup memory with coalesced reads (neighbouring threads read neighbouring elements), so each
// weight read from memory serves every row of the tile. A single row (decode) has no weight to
// reuse and runs matmul_row.wgsl instead.
// The weight reader (w, Dims, fn weight) comes from matmul_f32.wgsl or matmul_half.wgsl, prepended.
// Dispatch (ceil(m / 64), ceil(n / ROWS)).

struct Step { n: u32, pos0: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const ROWS = 8u;
const COLS = 64u;
const TILE_K = 32u;
// A weight tile row is padded by one so that threads reading their own rows hit different banks.
const W_STRIDE = TILE_K + 1u;
var<workgroup> xs: array<f32, ROWS * TILE_K>;      // [ROWS, TILE_K]
var<workgroup> ws: array<f32, COLS * W_STRIDE>;    // [COLS, TILE_K + 1]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t0 = wid.y * ROWS;
  let j0 = wid.x * COLS;
  let k = dims.k;
  let rows = min(ROWS, step.n - min(step.n, t0));
  var acc: array<f32, ROWS>;
  for (var k0 = 0u; k0 < k; k0 += TILE_K) {
    for (var e = lid; e < ROWS * TILE_K; e += COLS) {
      let r = e / TILE_K;
      let c = e % TILE_K;
      var v = 0.0;
      if (r < rows && k0 + c < k) { v = x[(t0 + r) * k + k0 + c]; }
      xs[e] = v;
    }
    for (var e = lid; e < COLS * TILE_K; e += COLS) {
      let r = e / TILE_K;
      let c = e % TILE_K;
      var v = 0.0;
      if (j0 + r < dims.m && k0 + c < k) { v = weight((j0 + r) * k + k0 + c); }
      ws[r * W_STRIDE + c] = v;
    }
    workgroupBarrier();
    for (var c = 0u; c < TILE_K; c++) {
      let wv = ws[lid * W_STRIDE + c];
      for (var r = 0u; r < ROWS; r++) {
        acc[r] += xs[r * TILE_K + c] * wv;
      }
    }
    workgroupBarrier();
  }
  let j = j0 + lid;
  if (j >= dims.m) { return; }
  for (var r = 0u; r < rows; r++) {
    out[(t0 + r) * dims.m + j] = acc[r];
  }
}
