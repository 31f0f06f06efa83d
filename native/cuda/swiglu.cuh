// out[count] = silu(gate) * up, silu(g) = g / (1 + exp(-g))
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "weight_types.cuh"

namespace rl::cuda {

void swiglu(const float* gate, const float* up, size_t count, float* out, cudaStream_t stream);
// The same rounded to `type` (F16, BF16) into out16 [count] alone, 16-byte aligned: the next
// product's operand (gemm_cublaslt_add with x null). count a multiple of 8; gate, up 16-byte aligned.
void swiglu_rounded(const float* gate, const float* up, size_t count, void* out16, WeightType type, cudaStream_t stream);

}  // namespace rl::cuda
