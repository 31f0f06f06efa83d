// Decode attention over selected KV blocks only (the sparse path): the newest token (position
// pos0, one row) attends, per query head, to the blocks its KV head's selection lists.
// q [heads, headDim]; kCache, vCache [context, kvHeads, headDim]; out [heads, headDim].
// selection: counts [kvHeads] then lists [kvHeads, maxBlocks] of block ids (any order).
// Blocks hold blockSize positions; the last one may be partial (positions < pos0 + 1 exist).
// Same online softmax as attention.wgsl, over 64-position tiles inside each listed block.
// Dispatch (heads, 1).

struct Step { n: u32, pos0: u32 }
struct Dims { heads: u32, kvHeads: u32, headDim: u32, scale: f32, blockSize: u32, maxBlocks: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> kCache: array<f32>;
@group(0) @binding(4) var<storage, read> vCache: array<f32>;
@group(0) @binding(5) var<storage, read> selection: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const WG = 64u;
const NEG_BIG = -3.0e38;
var<workgroup> probs: array<f32, WG>;
var<workgroup> scratch: array<f32, WG>;
var<workgroup> shared_u32: u32;

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

// A value every invocation reads from storage, made uniform for the loops around barriers.
fn uniformRead(index: u32, lid: u32) -> u32 {
  workgroupBarrier();                     // everyone has read the previous value
  if (lid == 0u) { shared_u32 = selection[index]; }
  return workgroupUniformLoad(&shared_u32);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let hd = dims.headDim;
  let kvh = h / (dims.heads / dims.kvHeads);
  let context = step.pos0 + 1u;
  let qBase = h * hd;
  let rowStride = dims.kvHeads * hd;
  let headOffset = kvh * hd;

  var runMax = NEG_BIG;
  var runSum = 0.0;
  var acc: array<f32, 4>;

  let count = min(uniformRead(kvh, lid), dims.maxBlocks);
  for (var i = 0u; i < count; i++) {
    let block = uniformRead(dims.kvHeads + kvh * dims.maxBlocks + i, lid);
    let first = block * dims.blockSize;
    if (first >= context) { continue; }
    let fill = min(dims.blockSize, context - first);
    for (var j0 = 0u; j0 < fill; j0 += WG) {
      let j = j0 + lid;
      var score = NEG_BIG;
      if (j < fill) {
        let kBase = (first + j) * rowStride + headOffset;
        var dot = 0.0;
        for (var d = 0u; d < hd; d++) { dot += q[qBase + d] * kCache[kBase + d]; }
        score = dot * dims.scale;
      }
      scratch[lid] = score;
      workgroupBarrier();
      let newMax = max(runMax, reduceMax(lid));
      workgroupBarrier();

      var p = 0.0;
      if (j < fill) { p = exp(score - newMax); }
      probs[lid] = p;
      scratch[lid] = p;
      workgroupBarrier();
      let tileSum = reduceSum(lid);

      let correction = exp(runMax - newMax);
      runSum = runSum * correction + tileSum;
      let width = min(WG, fill - j0);
      for (var r = 0u; r < 4u; r++) {
        let d = lid + r * WG;
        if (d < hd) {
          var sum = 0.0;
          for (var c = 0u; c < width; c++) { sum += probs[c] * vCache[(first + j0 + c) * rowStride + headOffset + d]; }
          acc[r] = acc[r] * correction + sum;
        }
      }
      runMax = newMax;
      workgroupBarrier();
    }
  }

  for (var r = 0u; r < 4u; r++) {
    let d = lid + r * WG;
    if (d < hd) { out[qBase + d] = select(0.0, acc[r] / runSum, runSum > 0.0); }
  }
}
