// Rotary position embedding in place, HF rotate_half convention: for token t (position pos0 + t),
// each head's pairs (i, i + head_dim/2) rotate by angle = position * inv_freq[i]. inv_freq
// [head_dim/2] (device memory) already holds any scaling (llama3: model/rope_freq on the host).
#pragma once
#include <cuda_runtime.h>

namespace rl::cuda {

void rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq, cudaStream_t stream);

}  // namespace rl::cuda
