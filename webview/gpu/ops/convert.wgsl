// Widens 16-bit weights to f32 on the GPU after upload: IEEE half (kind 0) or bfloat16 (kind 1).
// src holds the raw little-endian 16-bit values packed two per u32; dst [count] f32.
// Dispatch (x, y) with x * y * 64 >= ceil(count / 2); the flat index spans both dimensions so
// large tensors stay under the 65535-workgroups-per-dimension limit.

struct Dims { count: u32, kind: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn halfToF32(h: u32) -> f32 {
  let exponent = (h >> 10u) & 0x1fu;
  let mantissa = h & 0x3ffu;
  var magnitude: f32;
  if (exponent == 0u) {
    magnitude = f32(mantissa) * 5.9604644775390625e-8;          // subnormal: mantissa * 2^-24
  } else if (exponent == 31u) {
    magnitude = bitcast<f32>(0x7f800000u | (mantissa << 13u));  // inf or NaN
  } else {
    magnitude = bitcast<f32>(((exponent + 112u) << 23u) | (mantissa << 13u));
  }
  return select(magnitude, -magnitude, (h & 0x8000u) != 0u);
}

fn widen(h: u32) -> f32 {
  if (dims.kind == 0u) { return halfToF32(h); }
  return bitcast<f32>(h << 16u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) lid: u32) {
  let pair = (wid.y * groups.x + wid.x) * 64u + lid;
  let i = pair * 2u;
  if (i >= dims.count) { return; }
  let packed = src[pair];
  dst[i] = widen(packed & 0xffffu);
  if (i + 1u < dims.count) { dst[i + 1u] = widen(packed >> 16u); }
}
