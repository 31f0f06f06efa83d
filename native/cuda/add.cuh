// x[count] += y[count]  (residual connections)
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace rl::cuda {

void add(float* x, const float* y, size_t count, cudaStream_t stream);

}  // namespace rl::cuda
