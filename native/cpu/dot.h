// The inner product every matrix op reduces to, in float32.
#pragma once

namespace rl {

float dot_f32(const float* a, const float* b, int n);

}  // namespace rl
