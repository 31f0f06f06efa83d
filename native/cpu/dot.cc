#include "cpu/dot.h"

#include "cpu/simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RL_X86 1
#endif

namespace rl {
namespace {

// Eight independent partial sums so the compiler can vectorize without reassociating.
float dot_portable(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
  }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

#ifdef RL_X86
// Two 8-lane accumulators over 16 floats per step, one more 8-float step, then the scalar tail.
// dot_avx2 and dot4_avx2 share this order exactly.
__attribute__((target("avx2,fma"))) inline float finish(__m256 acc0, __m256 acc1, const float* a, const float* b, int i, int n) {
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float sum = _mm_cvtss_f32(s);
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  if (i + 8 <= n) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    i += 8;
  }
  return finish(acc0, acc1, a, b, i, n);
}

__attribute__((target("avx2,fma"))) void dot4_avx2(const float* w, const float* x, size_t stride, int n, float* out) {
  const float* x0 = x;
  const float* x1 = x + stride;
  const float* x2 = x + 2 * stride;
  const float* x3 = x + 3 * stride;
  __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + i), a0);
    b0 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x0 + i + 8), b0);
    a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + i), a1);
    b1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + i + 8), b1);
    a2 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x2 + i), a2);
    b2 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x2 + i + 8), b2);
    a3 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x3 + i), a3);
    b3 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x3 + i + 8), b3);
  }
  if (i + 8 <= n) {
    const __m256 w0 = _mm256_loadu_ps(w + i);
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + i), a0);
    a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + i), a1);
    a2 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x2 + i), a2);
    a3 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x3 + i), a3);
    i += 8;
  }
  // a * b == b * a exactly, so (w, x) here matches dot_avx2(x, w) and dot_avx2(w, x) alike.
  out[0] = finish(a0, b0, w, x0, i, n);
  out[1] = finish(a1, b1, w, x1, i, n);
  out[2] = finish(a2, b2, w, x2, i, n);
  out[3] = finish(a3, b3, w, x3, i, n);
}
#endif

}  // namespace

float dot_f32(const float* a, const float* b, int n) {
#ifdef RL_X86
  if (cpu_has_avx2_fma_f16c()) return dot_avx2(a, b, n);
#endif
  return dot_portable(a, b, n);
}

void dot4_f32(const float* w, const float* x, size_t x_stride, int n, float* out) {
#ifdef RL_X86
  if (cpu_has_avx2_fma_f16c()) return dot4_avx2(w, x, x_stride, n, out);
#endif
  for (int j = 0; j < 4; j++) out[j] = dot_portable(w, x + j * x_stride, n);
}

}  // namespace rl
