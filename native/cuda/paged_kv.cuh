// The GPU's view of one layer of the paged KV cache (the layout of native/kv/kv_cache.h, in fp16).
//
// A physical block holds `block_size` positions of one layer for all KV heads:
//   k, v          [n_phys_blocks][n_kv_heads][block_size][head_dim]  fp16
//   key_min/max   [n_phys_blocks][n_kv_heads][head_dim]              fp16, rounded outward so the
//                                                                    box always contains the keys
// A sequence is a block table: logical block i (positions i*block_size ..) -> physical block id.
#pragma once
#include <cuda_fp16.h>

namespace rl::cuda {

struct PagedKvLayer {
  const __half* k = nullptr;
  const __half* v = nullptr;
  const __half* key_min = nullptr;  // may be null when no summaries are kept
  const __half* key_max = nullptr;
  const int* block_table = nullptr;  // [n_logical] device memory
  int n_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
  int length = 0;  // positions in the sequence; n_logical = ceil(length / block_size)

  __host__ __device__ int n_logical() const { return (length + block_size - 1) / block_size; }
  // Positions written in logical block b (block_size except for the tail block).
  __host__ __device__ int fill(int b) const {
    int rest = length - b * block_size;
    return rest < block_size ? rest : block_size;
  }
  __host__ __device__ size_t tile_offset(int phys, int kv_head) const {
    return ((size_t)phys * n_kv_heads + kv_head) * block_size * head_dim;
  }
  __host__ __device__ size_t summary_offset(int phys, int kv_head) const {
    return ((size_t)phys * n_kv_heads + kv_head) * head_dim;
  }
};

}  // namespace rl::cuda
