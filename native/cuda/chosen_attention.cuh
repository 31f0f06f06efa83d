// Decode attention over chosen blocks: the blocks sparse decode attention (native/prhs) selected on
// the host, attended on the GPU over the float32 paged KV mirror (kv_append.cuh). For the query
// heads [head0, head0 + group) of one KV head, chosen_attention_add folds the listed logical blocks
// of the sequence into a running online-softmax state; blocks may come in several calls (the
// certificate's expansion adds them one by one), and chosen_attention_write normalises at the end:
//   state [group][head_dim + 2] = Σ exp(s - m)·v [head_dim], then m, then Σ exp(s - m)
// so the host reads m + log(Σ) as each query head's log-sum-exp, the selected mass Z of the
// certificate. Scores are q·k times `scale`, float32 (the dense kernel's arithmetic).
#pragma once
#include <cuda_runtime.h>

#include "kv_append.cuh"

namespace rl::cuda {

bool chosen_attention_supports(int head_dim);
// Floats of one state row: head_dim + 2.
inline int chosen_attention_state_floats(int head_dim) { return head_dim + 2; }

// blocks [n_blocks]: logical block ids (device memory); `context` positions in the sequence (the
// tail block holds context - b * block_size of them). fresh: the state starts empty.
void chosen_attention_add(const PagedKvF32& kv, int kv_head, int context, const int* blocks, int n_blocks, int head0, int group,
                          float scale, const float* q, bool fresh, float* state, cudaStream_t stream);
// Every KV head of the layer at once, each from an empty state (fresh), in one grid and one merge:
// KV head h takes n_blocks[h] (host) logical blocks listed at blocks + h * stride (device), its query
// heads [h * group, (h + 1) * group), its state rows state + h * group * (head_dim + 2). Each KV head
// gets the split and the arithmetic chosen_attention_add(kv, h, ..., fresh = true) gives it alone (past
// its own splits its partials are empty, which the merge adds as zeros). Head dims 64, 128, 256, up to
// 16 KV heads. Where out is not null, the merge also writes the outputs there, [n_kv_heads * group][head_dim]:
// what chosen_attention_write of the states gives, bit for bit, until another block is added.
bool chosen_attention_heads_supports(int head_dim, int n_kv_heads);
void chosen_attention_heads(const PagedKvF32& kv, int context, const int* blocks, int stride, const int* n_blocks, int group, float scale,
                            const float* q, float* state, float* out, cudaStream_t stream);
// out [group][head_dim] = Σ exp(s - m)·v / Σ exp(s - m) (zeros where no position was added).
void chosen_attention_write(const float* state, int group, int head_dim, float* out, cudaStream_t stream);

}  // namespace rl::cuda
