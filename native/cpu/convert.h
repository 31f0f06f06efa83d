// Weight element conversion to float32 (exact for every F16 and BF16 value, subnormals included).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backend.h"

namespace rl {

inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

// IEEE half -> float without branches on the value's class: normal numbers are re-biased by a
// multiply, subnormals come out of a float subtraction (the FP16 library's method).
inline float f16_to_f32(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const float normalized = bits_to_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = bits_to_f32((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t magnitude = two_w < (1u << 27) ? f32_to_bits(denormalized) : f32_to_bits(normalized);
  return bits_to_f32(sign | magnitude);
}

// Element i of a weight's data, as float32 (for vectors read one element at a time).
inline float load_f32(DType dtype, const void* data, size_t i) {
  switch (dtype) {
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    default: return static_cast<const float*>(data)[i];
  }
}

// dst[count] = elements [first, first + count) of a weight's data, as float32.
void to_f32(DType dtype, const void* data, size_t first, size_t count, float* dst);

}  // namespace rl
