// Per-block log-mass bounds for sparse decode attention's selection (native/prhs), on the GPU next
// to the float32 KV mirror and its key summaries, for the query heads of one KV head:
//   minmax: native/prhs/block_bounds.cc's minmax_log_bound, log(fill) + Σ_i max(q_i·lo_i, q_i·hi_i) + slack
//   sketch: native/prhs/key_sketch.cc's sketch_log_bound of build_sketch(keys, lo, hi, fill, bits),
//           the int8/int4 codes and their rounded-up error made from the keys on the fly, or taken
//           from the sketch cache where a full block's were kept (SketchCache)
// in double. A min/max bound sums in the host's order with no FMA contraction: the host's to the last
// bit (its terms made by many threads, each item's chain by one). A sketch bound's sums run on the
// FP64 tensor cores where the shape allows (sm_80+; else split over a CTA's threads), and its
// log-sum-exp over a block's positions is max + log Σ exp (the host's: chains of adds and of
// log_add): a few ulps apart, far inside the bound's slack (1e-9 relative). REPO_LENS_CUDA_MINMAX_CHUNKS=0
// and REPO_LENS_CUDA_SKETCH_MMA=0 give the first kernels (one thread per item; a CTA per block). Then, over a
// mask of blocks, each query head's log-sum-exp of a table and rank_blocks' per-block scores
// (selection.h), the sums over blocks in the GPU's own order.
// Tables are [group][n_blocks] doubles; masks [n_blocks] chars (nonzero: in), device memory.
#pragma once
#include <cuda_runtime.h>

namespace rl::cuda {

// One layer's keys and key summaries in the layout of native/kv/kv_cache.h (the backend's mirror).
struct BlockBoundsKv {
  const float* keys = nullptr;     // [n_phys][n_kv_heads][block_size][head_dim]
  const float* summary = nullptr;  // [n_phys][n_kv_heads][2][head_dim]: min, then max
  const int* block_table = nullptr;  // [n_logical] logical -> physical
  int n_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
  int context = 0;  // positions in the sequence: logical block b holds min(block_size, context - b·block_size)
};

// The codes and errors of full blocks' sketches, kept so that each is built once (a full block's keys
// and summary do not change until the block is written again; the owner then clears `valid`). Null
// pointers: no cache, every sketch built from the keys.
struct SketchCache {
  unsigned char* codes = nullptr;  // [n_phys][n_kv_heads][head_dim][block_size]
  float* err = nullptr;            // [n_phys][n_kv_heads][head_dim]
  unsigned char* valid = nullptr;  // [n_phys][n_kv_heads]: the bits of the sketch kept there, 0: none
};

// q_scaled[i] = double(q[i]) · scale for i < count, one IEEE multiplication as the host's
// `q[i] * scale` (float promoted to double): the host's scaled queries to the bit.
void block_bounds_scale_query(const float* q, int count, double scale, double* q_scaled, cudaStream_t stream);

// Whether the sketch bound runs for this shape (its codes for one block fit in shared memory).
bool block_bounds_sketch_supports(int group, int head_dim, int block_size);

// table[g][b] for the blocks of `mask`; q [group][head_dim] is the host's scaled query (double);
// log_fill [block_size + 1]: the host's std::log(fill) (the device log may differ in the last bit).
void block_bounds_minmax(const BlockBoundsKv& kv, int kv_head, const double* q, int group, const char* mask, int n_blocks,
                         const double* log_fill, double* table, cudaStream_t stream);
// bits 8 or 4. A full block's sketch comes from `cache` where kept with these bits, else is built and
// kept there; the table is the same to the bit either way.
void block_bounds_sketch(const BlockBoundsKv& kv, const SketchCache& cache, int kv_head, const double* q, int group, const char* mask,
                         int n_blocks, int bits, double* table, cudaStream_t stream);
// out [n][group]: exact_log_mass (native/prhs/block_bounds.cc) of the listed logical blocks
// blocks [n] (device memory) for each query head: the scores q·k in double in the host's order (to
// the bit), their log-sum-exp over the block's positions the host's chain of log_add (the device's
// exp and log1p: within an ulp or two).
void block_bounds_exact(const BlockBoundsKv& kv, int kv_head, const double* q, int group, const int* blocks, int n, double* out,
                        cudaStream_t stream);
// lse [group]: log Σ_{b in mask} exp(table[g][b]), -inf for an empty mask.
void block_bounds_lse(const double* table, int group, int n_blocks, const char* mask, double* lse, cudaStream_t stream);
// score [n_blocks]: Σ_g exp(table[g][b] - lse[g]) over g with a finite lse, for b in mask; 0 elsewhere.
void block_bounds_scores(const double* table, int group, int n_blocks, const char* mask, const double* lse, double* score,
                         cudaStream_t stream);

}  // namespace rl::cuda
