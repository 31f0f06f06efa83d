// out[count] = silu(gate) * up, silu(g) = g / (1 + exp(-g))
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace rl::cuda {

void swiglu(const float* gate, const float* up, size_t count, float* out, cudaStream_t stream);

}  // namespace rl::cuda
