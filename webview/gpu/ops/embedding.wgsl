// Embedding lookup: out[t, :] = table[ids[t], :].
// ids [n], table [vocab, d], out [n, d]. Dispatch (ceil(d / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { d: u32, vocab: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let t = gid.y;
  if (t >= step.n || i >= dims.d) { return; }
  // ids are checked against the vocabulary on the CPU; clamp anyway so a bad id cannot read out of bounds.
  let id = min(ids[t], dims.vocab - 1u);
  out[t * dims.d + i] = table[id * dims.d + i];
}
