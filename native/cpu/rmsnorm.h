// out[n][dim] = x / sqrt(mean(x^2) + eps) * weight, as transformers' LlamaRMSNorm (float32).
#pragma once
#include "backend.h"

namespace rl {

void cpu_rmsnorm(const float* x, const Weight& weight, int n, float eps, float* out);

}  // namespace rl
