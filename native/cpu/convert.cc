#include "cpu/convert.h"

namespace rl {

void to_f32(DType dtype, const void* data, size_t first, size_t count, float* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, static_cast<const float*>(data) + first, count * sizeof(float));
      return;
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(data) + first;
      for (size_t i = 0; i < count; i++) dst[i] = f16_to_f32(src[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* src = static_cast<const uint16_t*>(data) + first;
      for (size_t i = 0; i < count; i++) dst[i] = bf16_to_f32(src[i]);
      return;
    }
  }
}

}  // namespace rl
