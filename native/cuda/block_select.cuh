// PrHS block selection on the GPU, per KV head (GQA-aware: one set for the whole query group),
// three kernels over every SM:
//   1. score: for every logical block an upper bound of each query head's scaled score,
//      ub = sum_d max(q_d * key_min_d, q_d * key_max_d) (log2 units: scale * log2 e folded in q),
//      and per warp the parts of the normalisers (the largest fill * 2^ub and a sum scaled by it);
//   2. keys (a thread a block): the ranking key as the CPU selection ranks
//      (native/prhs/selection.h): the sum over the group of each head's estimated share of the
//      block's mass, fill * 2^ub_g / sum over all blocks (sinks and recent blocks: always kept),
//      and a histogram of the keys' top 12 bits per KV head;
//   3. choose (a thread a block): every range of blocks finds the same `budget`-th largest key from
//      the histogram (radix passes over the keys near it where needed) and writes its kept
//      logical ids at their place in the ascending list; the ranges' sums give per query head
//      log2 of U = sum over the left-out blocks of fill * 2^ub, an upper bound on their softmax
//      numerators. With the attended log-sum-exp Z, delta_bound = U / (Z + U) >= the exact
//      left-out mass (decode_attention).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "paged_kv.cuh"

namespace rl::cuda {

struct BlockSelectArgs {
  const float* q = nullptr;  // [n_heads][head_dim] float32
  PagedKvLayer kv;           // key_min / key_max required
  int n_heads = 0;
  float scale = 0.f;
  int budget = 0;            // blocks kept per KV head, the forced ones included
  int sink_blocks = 1;       // first blocks always kept (the blocks holding the sink positions)
  int recent_blocks = 1;     // last blocks always kept (those holding the recency window; the tail)
  // Leading logical blocks whose summaries and block-table entries the previous kernel on the
  // stream does not write (in a decode step, all but the tail block the new token went into): the
  // score kernel starts reading them while that kernel finishes. 0: nothing is read before it ends.
  int fixed_blocks = 0;
  int* selected = nullptr;   // [n_kv_heads][budget] logical ids, ascending; min(budget, n_logical) used
  float* log2_left_out = nullptr;  // [n_heads] log2 U (-inf when nothing is left out)
  float* workspace = nullptr;      // block_select_workspace_floats(...) floats, 16-byte aligned
};

size_t block_select_workspace_floats(int n_kv_heads, int group, int n_logical_blocks);
// Per KV head, a count in the workspace that reaches `target` once that head's ids are written,
// before the selection's last kernel releases its dependents: decode_attention's list_ready.
struct ListReady {
  const unsigned* counts;
  unsigned target;
};
ListReady block_select_list_ready(const BlockSelectArgs& args);
// Enqueues the kernels on `stream` (graph-capturable). Throws on bad arguments or launch errors.
void block_select(const BlockSelectArgs& args, cudaStream_t stream);

}  // namespace rl::cuda
