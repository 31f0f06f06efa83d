// Dense causal attention over the float32 paged KV cache (kv_append.cuh), prefill and decode:
// out[n][n_heads][head_dim] for q[n][n_heads][head_dim], token t (position pos0 + t) attending to
// positions [0, pos0 + t]; query head h reads KV head h / (n_heads / n_kv_heads) (GQA); scores
// scaled by `scale`. Float32 throughout, the CPU backend's definition (cpu/attention.cc). One CTA
// per (token, query head) of 16 warps, each scoring 4 positions at a time with an online softmax,
// merged at the end: simple and exact rather than fast (no split over CTAs; the fp16 split-K decode
// kernel is decode_attention.cuh).
#pragma once
#include <cuda_runtime.h>

#include "kv_append.cuh"

namespace rl::cuda {

bool dense_attention_supports(int head_dim);
void dense_attention(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                     cudaStream_t stream);

}  // namespace rl::cuda
