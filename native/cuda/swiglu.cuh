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
// The same from gate and up in `type` (gate16, up16 [count], 16-byte aligned; as transformers' 16-bit
// products leave them), silu(g) * u computed in float32 and rounded once.
void swiglu16_rounded(const void* gate16, const void* up16, size_t count, void* out16, WeightType type, cudaStream_t stream);
// out [count] float32 = in16 [count] in `type` (exact): where the product after wants float32.
void widen16(const void* in16, size_t count, float* out, WeightType type, cudaStream_t stream);

}  // namespace rl::cuda
