#include "cpu/convert.h"

#include "cpu/simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RL_X86 1
#endif

namespace rl {
namespace {

#ifdef RL_X86
__attribute__((target("avx2,f16c"))) void f16_row_avx2(const uint16_t* src, size_t count, float* dst) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < count; i++) dst[i] = f16_to_f32(src[i]);
}

__attribute__((target("avx2"))) void bf16_row_avx2(const uint16_t* src, size_t count, float* dst) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
  }
  for (; i < count; i++) dst[i] = bf16_to_f32(src[i]);
}
#endif

}  // namespace

void to_f32(DType dtype, const void* data, size_t first, size_t count, float* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, static_cast<const float*>(data) + first, count * sizeof(float));
      return;
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(data) + first;
#ifdef RL_X86
      if (cpu_has_avx2_fma_f16c()) return f16_row_avx2(src, count, dst);
#endif
      for (size_t i = 0; i < count; i++) dst[i] = f16_to_f32(src[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* src = static_cast<const uint16_t*>(data) + first;
#ifdef RL_X86
      if (cpu_has_avx2_fma_f16c()) return bf16_row_avx2(src, count, dst);
#endif
      for (size_t i = 0; i < count; i++) dst[i] = bf16_to_f32(src[i]);
      return;
    }
  }
}

}  // namespace rl
