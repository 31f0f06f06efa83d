// Key summaries of the float32 KV mirror: after kv_append stores a layer's new keys, the summary of
// every block they land in takes them in, as native/kv/kv_cache.cc's KvCache::write does, position
// by position: a block's first position written past the committed length starts it (min = max =
// the key), any other position widens it element-wise (the host's std::min / std::max, so equal
// inputs give bit-equal summaries). Layout of one layer: [n_phys][n_kv_heads][2][head_dim], min then max.
#pragma once
#include <cuda_runtime.h>

namespace rl::cuda {

// k [n][n_kv_heads][head_dim] at positions pos0 .. pos0+n-1; `length` the sequence's committed
// positions before this write (positions below it are overwrites); block_table device memory.
void key_summary_append(float* summary, const int* block_table, int n_kv_heads, int head_dim, int block_size, int pos0, int n,
                        int length, const float* k, cudaStream_t stream);

}  // namespace rl::cuda
