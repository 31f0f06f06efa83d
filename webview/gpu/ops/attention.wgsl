// Causal attention over the KV cache with grouped-query heads (GQA), one query row per workgroup.
// q [n, heads, headDim] (query t sits at position pos0 + t); kCache, vCache [context, kvHeads, headDim]
// already hold positions 0 .. pos0 + n - 1; out [n, heads, headDim].
// Query head h reads KV head h / (heads / kvHeads). Keys are visited in tiles of 64 with an online
// softmax (running max and sum), so no score buffer the size of the context is needed.
// Dispatch (heads, n). headDim <= 256.

struct Step { n: u32, pos0: u32 }
struct Dims { heads: u32, kvHeads: u32, headDim: u32, scale: f32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> kCache: array<f32>;
@group(0) @binding(4) var<storage, read> vCache: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WG = 64u;
const NEG_BIG = -3.0e38;
var<workgroup> probs: array<f32, WG>;
var<workgroup> scratch: array<f32, WG>;

fn reduceMax(lid: u32) -> f32 {
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { scratch[lid] = max(scratch[lid], scratch[lid + stride]); }
    workgroupBarrier();
  }
  return scratch[0];
}

fn reduceSum(lid: u32) -> f32 {
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { scratch[lid] += scratch[lid + stride]; }
    workgroupBarrier();
  }
  return scratch[0];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t = wid.y;
  if (t >= step.n) { return; }
  let hd = dims.headDim;
  let kvh = h / (dims.heads / dims.kvHeads);
  let keys = step.pos0 + t + 1u;          // causal: positions 0 ..= pos0 + t
  let qBase = (t * dims.heads + h) * hd;
  let rowStride = dims.kvHeads * hd;      // one cache position
  let headOffset = kvh * hd;

  var runMax = NEG_BIG;
  var runSum = 0.0;
  var acc: array<f32, 4>;                 // output dims lid, lid + 64, lid + 128, lid + 192

  for (var j0 = 0u; j0 < keys; j0 += WG) {
    // Score of key j0 + lid.
    let j = j0 + lid;
    var score = NEG_BIG;
    if (j < keys) {
      let kBase = j * rowStride + headOffset;
      var dot = 0.0;
      for (var d = 0u; d < hd; d++) { dot += q[qBase + d] * kCache[kBase + d]; }
      score = dot * dims.scale;
    }
    scratch[lid] = score;
    workgroupBarrier();
    let newMax = max(runMax, reduceMax(lid));
    workgroupBarrier();

    var p = 0.0;
    if (j < keys) { p = exp(score - newMax); }
    probs[lid] = p;
    scratch[lid] = p;
    workgroupBarrier();
    let tileSum = reduceSum(lid);

    let correction = exp(runMax - newMax);
    runSum = runSum * correction + tileSum;
    let width = min(WG, keys - j0);
    for (var r = 0u; r < 4u; r++) {
      let d = lid + r * WG;
      if (d < hd) {
        var sum = 0.0;
        for (var i = 0u; i < width; i++) { sum += probs[i] * vCache[(j0 + i) * rowStride + headOffset + d]; }
        acc[r] = acc[r] * correction + sum;
      }
    }
    runMax = newMax;
    workgroupBarrier();                   // probs and scratch are rewritten by the next tile
  }

  for (var r = 0u; r < 4u; r++) {
    let d = lid + r * WG;
    if (d < hd) { out[qBase + d] = acc[r] / runSum; }
  }
}
