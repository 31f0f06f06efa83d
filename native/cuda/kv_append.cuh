// KV append: stores one layer's new keys and values k, v [n][n_kv_heads][head_dim] (float32, RoPE
// applied) at positions pos0 .. pos0+n-1 of a sequence, in the float32 paged layout of
// native/kv/kv_cache.h (the backend's device mirror of the host cache):
//   k, v  [n_phys_blocks][n_kv_heads][block_size][head_dim] for this layer
#pragma once
#include <cuda_runtime.h>

namespace rl::cuda {

struct PagedKvF32 {
  float* k = nullptr;
  float* v = nullptr;
  const int* block_table = nullptr;  // [n_logical] device memory: logical block -> physical
  int n_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
};

void kv_append(const PagedKvF32& kv, int pos0, int n, const float* k, const float* v, cudaStream_t stream);

}  // namespace rl::cuda
