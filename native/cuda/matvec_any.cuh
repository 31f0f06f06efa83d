// y[n][rows] = x[n][cols] . W^T (+ bias[rows]) for any cols (matvec.cuh needs cols % 8 == 0):
// one warp per (token, row), one element at a time. The fallback for odd shapes (stories260K's
// intermediate size 172), float32 accumulation as everywhere.
#pragma once
#include <cuda_runtime.h>

#include "weight_types.cuh"

namespace rl::cuda {

void matvec_any(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
                cudaStream_t stream);

}  // namespace rl::cuda
