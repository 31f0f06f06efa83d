// out[n][dim] = x[n][dim] / sqrt(mean(x^2) + eps) * weight[dim]  (weight in its stored type)
#pragma once
#include <cuda_runtime.h>

#include "weight_types.cuh"

namespace rl::cuda {

void rmsnorm(const float* x, const void* weight, WeightType type, int n, int dim, float eps, float* out,
             cudaStream_t stream);
// The same, and out rounded to out16_type (F16, BF16) into out16 [n][dim]: the next products' operand
// (gemm_cublaslt_rounded), rounded as gemm_cublaslt rounds x.
void rmsnorm_rounded(const float* x, const void* weight, WeightType type, int n, int dim, float eps, float* out, void* out16,
                     WeightType out16_type, cudaStream_t stream);

}  // namespace rl::cuda
