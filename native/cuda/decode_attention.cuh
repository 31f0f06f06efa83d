// Decode attention (one new token, batch 1) over the paged KV cache, dense or over a list of
// selected blocks (PrHS), split over the context as in flash-decoding, in one kernel of grid
// (splits, KV heads): each CTA reads its share of the KV head's blocks once for all the query heads
// of its GQA group, with an online softmax per warp; the last CTA of a KV head to finish merges the
// splits of its query heads (log-sum-exp weights) and writes the output, the log-sum-exp and, for a
// sparse step, the certificate delta_bound.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "paged_kv.cuh"

namespace rl::cuda {

struct DecodeAttentionArgs {
  const float* q = nullptr;  // [n_heads][head_dim] float32 (RoPE applied)
  PagedKvLayer kv;
  int n_heads = 0;           // a multiple of kv.n_kv_heads; query head h reads KV head h / group
  float scale = 0.f;         // softmax scale, usually 1/sqrt(head_dim)
  // Blocks to attend: logical ids block_list[kv_head * list_stride + i], i < list_len.
  // Null: every logical block of the sequence (dense; list_len is then ignored).
  const int* block_list = nullptr;
  int list_len = 0;
  int list_stride = 0;
  // Sparse only, may be null: the list of KV head h is complete once list_ready[h] reaches
  // list_ready_target (block_select_list_ready). The attention then starts on each head's list as
  // soon as it is out, not when the previous kernel ends. That kernel must not write q or the
  // cache; it should release its dependents only after raising the counts (else they spin).
  const unsigned* list_ready = nullptr;
  unsigned list_ready_target = 0;
  // Sparse only, may be null: per query head, log2 of an upper bound on the sum of exp2 of the
  // scaled scores (scale * log2 e * q.k) of every position left out. Gives delta_bound.
  const float* log2_left_out = nullptr;

  float* out = nullptr;          // [n_heads][head_dim] float32
  float* lse = nullptr;          // [n_heads] natural log-sum-exp of the attended scores, or null
  float* delta_bound = nullptr;  // [n_heads] upper bound on the left-out attention mass, or null
  // decode_attention_workspace_floats(...) floats, zeroed before its first use: it ends with a count
  // per KV head that every call leaves at zero.
  float* workspace = nullptr;
};

// Head dims and GQA group sizes with a compiled kernel.
bool decode_attention_supports(int head_dim, int group, int block_size);
size_t decode_attention_workspace_floats(int n_heads, int head_dim);
// Enqueues the kernel on `stream` (graph-capturable). Throws std::runtime_error on a bad
// shape or a launch error.
void decode_attention(const DecodeAttentionArgs& args, cudaStream_t stream);

}  // namespace rl::cuda
