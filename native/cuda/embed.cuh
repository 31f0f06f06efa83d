// out[n][dim] = rows tokens[0..n) of table [vocab][dim] (stored type) as float32. tokens is
// device memory, already checked < vocab by the caller.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "weight_types.cuh"

namespace rl::cuda {

void embed(const void* table, WeightType type, int dim, const int32_t* tokens, int n, float* out, cudaStream_t stream);

}  // namespace rl::cuda
