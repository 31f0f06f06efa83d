// The inner products every matrix op reduces to, in float32. dot4_f32 gives, for each of its four
// vectors, exactly the bits dot_f32 would: a token's result never depends on how tokens are grouped.
#pragma once
#include <cstddef>

namespace rl {

float dot_f32(const float* a, const float* b, int n);

// out[j] = dot_f32(w, x + j * x_stride, n) for j < 4, reading w once.
void dot4_f32(const float* w, const float* x, size_t x_stride, int n, float* out);

}  // namespace rl
