// Dense causal attention over the float32 paged KV cache (kv_append.cuh), prefill and decode:
// out[n][n_heads][head_dim] for q[n][n_heads][head_dim], token t (position pos0 + t) attending to
// positions [0, pos0 + t]; query head h reads KV head h / (n_heads / n_kv_heads) (GQA); scores
// scaled by `scale`. Float32 throughout, the CPU backend's definition (cpu/attention.cc).
// Decode-sized calls (n <= 16, head_dim 64, 128 or 256): one CTA per (KV head, up to 8 rows of
// (token, query head of its group), share of the context), so each K/V row is read once per step for
// the whole group; each warp streams its positions through its own cp.async pipeline, and a combine
// kernel merges the shares (flash-decoding), splits chosen so that one wave of CTAs fills the GPU.
// Other calls: one CTA per (token, query head) of 16 warps, each scoring 4 positions at a time with an
// online softmax, merged at the end, the context split as above when there are fewer (token, head)
// rows than SMs. Prefill chunks normally take prefill_attention.cuh instead.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "kv_append.cuh"

namespace rl::cuda {

bool dense_attention_supports(int head_dim);
// Floats of workspace a call with these sizes needs (0: no split, workspace may be null); an upper
// bound over the number of KV heads.
size_t dense_attention_workspace_floats(int n, int n_heads, int head_dim, int pos0);
void dense_attention(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                     float* workspace, cudaStream_t stream);

}  // namespace rl::cuda
