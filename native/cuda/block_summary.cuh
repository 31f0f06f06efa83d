// Block key summaries: for each logical block and KV head, the element-wise min and max of the
// keys written so far (fp16 keys, so fp16 min/max are exact). PrHS bounds every score of a block
// by max over the box [key_min, key_max] of q.k without reading its keys.
#pragma once
#include <cuda_runtime.h>

#include "paged_kv.cuh"

namespace rl::cuda {

// Recomputes the summaries of logical blocks [first, first + count) of `kv` (each block's filled
// positions only) into key_min/key_max [n_phys][n_kv_heads][head_dim]. Called after appending
// (count 1: the tail block) or once after a prefill (every block).
void update_block_summaries(const PagedKvLayer& kv, int first, int count, __half* key_min, __half* key_max,
                            cudaStream_t stream);

}  // namespace rl::cuda
