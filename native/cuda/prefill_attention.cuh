// Causal prefill attention over the float32 paged KV cache (kv_append.cuh), flash-style: for a
// chunk of n query tokens q [n][n_heads][head_dim] (RoPE applied) at positions pos0 .. pos0+n-1,
// out [n][n_heads][head_dim], token t attending to positions [0, pos0 + t], query head h reading
// KV head h / (n_heads / n_kv_heads) (GQA), scores q·k times `scale` (cpu/attention.cc's definition).
//
// One CTA per (tile of query rows, KV head, share of the keys): the rows are (token, query head)
// pairs of the heads that share the KV head, so each K/V tile staged in shared memory serves every
// row; an online softmax runs over the key tiles, the causal mask only in the tiles that need it.
// Q.K^T and P.V run on the tensor cores (mma m16n8k16, fp16 in, fp32 accumulate) with every
// operand split in fp16 hi + lo halves and three products (hi·hi + lo·hi + hi·lo): ~22-bit
// operands, float32-level results. A first kernel splits the visible keys and values into fp16
// hi / lo planes in the workspace (once per call, not once per CTA); the CTAs copy their tiles from
// there (cp.async, two stages; three for Half). When the (query tile, KV head) pairs do not fill the GPU in whole
// waves (decode-sized chunks after a long prefix), the keys are split over several CTAs and a third
// kernel merges their partial softmaxes. head_dim 64 and 128 only (dense_attention.cuh does the rest).
// PrefillPrecision::Half (prefill_precision.cuh) rounds q, k, v and the probabilities once to fp16
// instead: one product each for Q.K^T and P.V, half the planes, 64-key tiles. On Hopper (sm_90a code)
// both precisions' products are warpgroup MMAs (wgmma.cuh) from 64-key tiles laid out for them;
// REPO_LENS_CUDA_WGMMA=0 keeps the mma.sync kernel.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "kv_append.cuh"
#include "prefill_precision.cuh"

namespace rl::cuda {

bool prefill_attention_supports(int head_dim, int n_heads, int n_kv_heads);

// One layer's fp16 keys and values as the kernel reads them, kept by the caller from call to call
// (for one sequence), so that a call converts only from `from` on rather than the whole context.
struct PrefillKvTiles {
  __half* kv16 = nullptr;  // prefill_kv_tiles_halves(...) halves
  int stride = 0;          // positions per KV head: prefill_kv_tiles_stride(most positions)
  int from = 0;            // positions [0, from) hold this layer's keys and values as they are now
};
int prefill_kv_tiles_stride(int positions);
size_t prefill_kv_tiles_halves(int n_kv_heads, int head_dim, int stride, PrefillPrecision precision);

// Floats of workspace a call with these sizes needs: the fp16 keys and values unless they are kept
// apart, then the partials of a split (may be 0 with kept tiles).
size_t prefill_attention_workspace_floats(const PagedKvF32& kv, int pos0, int n, int n_heads, PrefillPrecision precision,
                                          bool tiles_apart = false);
// `kept`: the layer's kept tiles (their `from` is the caller's to advance), or null: the workspace holds them.
void prefill_attention(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                       float* workspace, PrefillPrecision precision, cudaStream_t stream, const PrefillKvTiles* kept = nullptr);

}  // namespace rl::cuda
