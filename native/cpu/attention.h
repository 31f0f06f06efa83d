// Causal multi-head attention over the paged KV cache, with GQA (query head h reads KV head
// h / (n_heads / n_kv_heads)). One pass over the blocks with an online softmax: per block the
// scores, the block's max, a rescale of the running sum and output. No allocation.
#pragma once
#include "backend.h"
#include "cpu/thread_pool.h"
#include "kv/kv_cache.h"

namespace rl {

// out[n][n_heads][head_dim] for q[n][n_heads][head_dim]; token t at position pos0 + t attends to
// positions [0, pos0 + t] of `seq` (which must be written in kv for this layer).
void cpu_attention(ThreadPool& pool, const KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out);

}  // namespace rl
