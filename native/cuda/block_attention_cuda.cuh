// Sparse decode attention's device side (prhs/block_attention.h on the GPU): what the backend
// (CudaBackend::block_attention) hands a layer's BlockAttention: its views of the mirror, its
// buffers and events, the host's copy of q. The classes are block_attention_cuda.cu's.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "block_bounds.cuh"
#include "kv_append.cuh"
#include "prhs/block_attention.h"

namespace rl::cuda {

struct Together;

// A layer as its CudaHeadAttentions see it (CudaHeadAttention::Layer): the mirror, q, out, and the
// per-KV-head buffers and events the backend keeps for them.
struct HeadAttentionLayer {
  cudaStream_t stream;
  PagedKvF32 kv;    // this layer's view of the device mirror
  int context;      // positions of the sequence; the decode token is the last
  float scale;      // 1/sqrt(head_dim), as dense attention applies it
  const float* q;   // [n_heads][head_dim] device
  float* out;       // [n_heads][head_dim] device
  // Per KV head (the KV heads of a layer are attended side by side):
  int* blocks;          // [n_kv_heads][n_logical] device, this layer's own: the ids of the blocks added, in order
  // What `blocks` holds for sure, per KV head its count then its ids (empty: not known), kept from
  // step to step: a layer whose ids did not change (a reused set, until the window enters a new
  // block) skips their copy, and the attention then waits for no copy.
  std::vector<int>* blocks_held = nullptr;
  int* blocks_host;     // [n_kv_heads][n_logical] pinned: their copy on the way there
  cudaEvent_t* sent;    // [n_kv_heads] recorded after the latest such copy
  float* state;         // [n_kv_heads][group][head_dim + 2] device
  float* state_host;    // [n_kv_heads][group][head_dim + 2] pinned: its copy for lse()
  cudaEvent_t* copied;  // [n_kv_heads] recorded after that copy
  int n_logical, group;
  Together* together = nullptr;  // the layer's (CudaBlockAttention's); null: every head on its own
  // Where the ids of all KV heads go together (CudaBlockAttention::launch), the stream that copies
  // them, so that the copy waits on no kernel and no kernel on it; null: `stream` copies them.
  cudaStream_t side = nullptr;
  cudaEvent_t consumed = nullptr;  // recorded on `stream` after the layer: its device ids were read
};

// A layer as its CudaBlockBounds see it (CudaBlockBounds::Layer): the mirror's keys and summaries,
// and the per-KV-head tables and read-back buffers the backend keeps for them.
struct BlockBoundsLayer {
  cudaStream_t stream;
  BlockBoundsKv kv;
  SketchCache sketch;      // this layer's kept sketches (null pointers: none)
  const double* log_fill;  // [block_size + 1] the host's log(fill)
  // Per KV head (the KV heads of a layer are bounded side by side), `most` blocks apart:
  double* q;               // [n_kv_heads][group][head_dim] device
  double* tables;          // [n_kv_heads][2][group][most] device
  char* mask;              // [n_kv_heads][most] device
  double* result;          // [n_kv_heads][most + group] device: scores, then lse
  double* result_host;     // [n_kv_heads][most + group] pinned: their copy
  cudaEvent_t* copied;     // [n_kv_heads] recorded after that copy
  int* ids;                // [n_kv_heads][most] device: the blocks whose exact masses are asked for
  int* ids_host;           // [n_kv_heads][most] pinned: their copy on the way there
  double* masses;          // [n_kv_heads][most][group] device: those masses
  double* masses_host;     // [n_kv_heads][most][group] pinned: their copy
  size_t most;             // blocks a sequence may have
  int group, n_blocks;     // n_blocks of this sequence
  // The sketch bound ahead of its time: where the latest selection that scored went on to bound
  // sketches (its certificate), *sketch_bits holds their bits, and the next one to score bounds
  // every block's sketch at once after its scores (the host ranks meanwhile); its certificate's
  // bound then finds them made. `all` [most]: device chars, all nonzero. Null: never ahead.
  int* sketch_bits = nullptr;
  const char* all = nullptr;
  // Where those sketches run on a stream of their own (REPO_LENS_CUDA_SKETCH_APART=0: on `stream`), so
  // that the layer's other KV heads' scores and the chosen blocks' attention run beside them: that
  // stream, and per KV head an event after its sketches, which `stream` waits for before its next
  // bound, sum or read of that KV head (and before the layer ends).
  cudaStream_t sketch_stream = nullptr;
  cudaEvent_t* sketched = nullptr;  // [n_kv_heads]
};

// The host's copy of q and the switches of a layer's CudaBlockAttention (CudaBlockAttention::Query).
struct BlockAttentionQuery {
  const float* host = nullptr;  // [n_heads][head_dim] pinned, being copied; null: the caller copies q
  cudaEvent_t copied = nullptr;   // recorded after that copy
  bool mapped = false;            // written there by the kernel that rotated q: no copy reads the device's q
  double scale = 0;               // the host's 1.0 / std::sqrt(double(head_dim))
  bool scale_on_device = true;    // false: the bounds upload the host's scaled q (the old path)
  bool host_reads = true;         // reads_host_cache(): true keeps the write-through before the selection
  bool attend_early = true;       // attends_early(): heads made before the host has q
};

// A layer's CudaBlockAttention (block_attention_cuda.cu, whose constructor says what setup_start and
// between are).
std::unique_ptr<prhs::BlockAttention> make_block_attention(const HeadAttentionLayer& layer, const BlockBoundsLayer& bounds, bool with_bounds,
                                                         const BlockAttentionQuery& query, bool fold_together, bool write_together,
                                                         double setup_start, double between);

}  // namespace rl::cuda
