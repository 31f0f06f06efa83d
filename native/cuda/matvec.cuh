// Decode matrix products: y[n][rows] = x[n][cols] . W^T (+ bias[rows]) for a few tokens, with W
// in its stored type (F32, F16, BF16) read once per group of up to 4 tokens, float32 activations
// and accumulation. One warp per output row, 16-byte loads of W. (Prefill-sized n wants a GEMM.)
#pragma once
#include <cuda_runtime.h>

#include "weight_types.cuh"

namespace rl::cuda {

// cols must be a multiple of 8 and W's rows 16-byte aligned. bias (float32) may be null.
void matvec(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
            cudaStream_t stream);

}  // namespace rl::cuda
