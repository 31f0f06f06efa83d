// 16-bit weights held packed two per u32 (little-endian: element 2i in the low half), widened on
// read: IEEE half (kind 0) or bfloat16 (kind 1). Prepended to the shaders that read such weights.

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

fn widen(h: u32, kind: u32) -> f32 {
  if (kind == 0u) { return halfToF32(h); }
  return bitcast<f32>(h << 16u);
}
