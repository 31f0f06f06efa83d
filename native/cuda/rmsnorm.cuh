// out[n][dim] = x[n][dim] / sqrt(mean(x^2) + eps) * weight[dim]  (weight in its stored type)
#pragma once
#include <cuda_runtime.h>

#include "weight_types.cuh"

namespace rl::cuda {

void rmsnorm(const float* x, const void* weight, WeightType type, int n, int dim, float eps, float* out,
             cudaStream_t stream);

}  // namespace rl::cuda
