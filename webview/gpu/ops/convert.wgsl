// Widens 16-bit weights to f32 on the GPU after upload: IEEE half (kind 0) or bfloat16 (kind 1);
// half.wgsl (prepended) does the conversion.
// src holds the raw little-endian 16-bit values packed two per u32; dst [count] f32.
// Dispatch (x, y) with x * y * 64 >= ceil(count / 2); the flat index spans both dimensions so
// large tensors stay under the 65535-workgroups-per-dimension limit.

struct Dims { count: u32, kind: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lid: u32) {
  let pair = (wid.y * groups.x + wid.x) * 64u + lid;
  let i = pair * 2u;
  if (i >= dims.count) { return; }
  let packed = src[pair];
  dst[i] = widen(packed & 0xffffu, dims.kind);
  if (i + 1u < dims.count) { dst[i + 1u] = widen(packed >> 16u, dims.kind); }
}
