// x[count] += y[count]  (residual connections); y[n][cols] += bias[cols]  (a product's bias)
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace rl::cuda {

void add(float* x, const float* y, size_t count, cudaStream_t stream);
void add_bias(float* y, int n, int cols, const float* bias, cudaStream_t stream);

}  // namespace rl::cuda
