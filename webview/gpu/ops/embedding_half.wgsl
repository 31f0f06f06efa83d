// embedding.wgsl for a 16-bit table kept packed on the GPU (half.wgsl, prepended):
// out[t, :] = table[ids[t], :]. ids [n], table [vocab, d] packed, out [n, d] f32.
// kind 0: IEEE half, 1: bfloat16. Dispatch (ceil(d / 64), n).

struct Step { n: u32, pos0: u32 }
struct Dims { d: u32, vocab: u32, kind: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let t = gid.y;
  if (t >= step.n || i >= dims.d) { return; }
  let id = min(ids[t], dims.vocab - 1u);
  let e = id * dims.d + i;
  out[t * dims.d + i] = widen((table[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu, dims.kind);
}
