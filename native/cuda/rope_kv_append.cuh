// Decode's RoPE and KV append in one launch: for a few tokens (positions pos0 .. pos0+n-1),
//   q [n][n_heads][head_dim]     rotated in place (rope.cuh's rotation, bit-equal)
//   k [n][n_kv_heads][head_dim]  rotated in place, then stored with v [n][n_kv_heads][head_dim]
//                                in the float32 paged mirror (kv_append.cuh) and taken into the
//                                key summaries (key_summary.cuh's rules, bit-equal)
//   staged                       when given, the rotated k [n][n_kv_heads][head_dim] and then v
//                                gathered there too (the host cache's write-through copies them
//                                with the other layers' in one copy)
//   q_host                       when given (pinned host memory), the rotated q written there too:
//                                the host has it once the kernel is done, with no copy after it
// One CTA per query head and one per KV head; a KV head's CTA walks the tokens in order, thread i
// owning the pair (i, i + head_dim/2) of every token, so its summary update needs no other thread.
#pragma once
#include <cuda_runtime.h>

#include "kv_append.cuh"

namespace rl::cuda {

// summary: this layer's [n_phys][n_kv_heads][2][head_dim]; `length` the sequence's committed
// positions before this write; inv_freq [head_dim/2] device memory; staged [2][n][n_kv_heads][head_dim] or null;
// q_host [n][n_heads][head_dim] or null.
void rope_kv_append(float* q, int n_heads, float* k, const float* v, const PagedKvF32& kv, float* summary, int pos0, int n,
                    int length, const float* inv_freq, float* staged, float* q_host, cudaStream_t stream);

}  // namespace rl::cuda
