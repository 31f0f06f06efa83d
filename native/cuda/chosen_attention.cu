#include "chosen_attention.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "device_util.cuh"
#include "group_attention.cuh"

namespace rl::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxPerLane = 16;  // head_dim <= 32 * 16 = 512 (backend.h's kMaxHeadDim)

// Head dims group_attention.cuh lacks: one CTA per query head of the group. Warp w scores positions w, w + kWarps, ... of the listed
// blocks laid end to end (block_size slots each, slots past a block's fill skipped) with its own
// online softmax; the warps and the previous state are merged at the end.
__global__ void __launch_bounds__(kWarps * 32)
    chosen_attention_add_kernel(const PagedKvF32 kv, const int kv_head, const int context, const int* __restrict__ blocks,
                                const int n_blocks, const int head0, const float scale, const float* __restrict__ q,
                                const bool fresh, float* __restrict__ state) {
  extern __shared__ float smem[];  // q [hd], then per warp: acc [hd], max, sum
  const int hd = kv.head_dim, bs = kv.block_size, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* qs = smem;
  float* acc_s = smem + hd;            // [kWarps][hd]
  float* max_s = acc_s + kWarps * hd;  // [kWarps]
  float* sum_s = max_s + kWarps;       // [kWarps]
  float* row = state + size_t(blockIdx.x) * (hd + 2);
  grid_dependency_wait();
  for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[size_t(head0 + blockIdx.x) * hd + d];
  __syncthreads();

  float acc[kMaxPerLane] = {};
  float running_max = -INFINITY, running_sum = 0.f;
  for (int slot = warp; slot < n_blocks * bs; slot += kWarps) {
    const int b = blocks[slot / bs], j = slot % bs;
    if (b * bs + j >= context) continue;  // past the tail block's fill (warp-uniform)
    const size_t at = ((size_t(kv.block_table[b]) * kv.n_kv_heads + kv_head) * bs + j) * hd;
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) dot += qs[d] * kv.k[at + d];
    }
    const float score = warp_sum(dot) * scale;
    const float new_max = fmaxf(running_max, score);
    const float rescale = expf(running_max - new_max);  // 0 on the first position
    const float p = expf(score - new_max);
    running_sum = running_sum * rescale + p;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) acc[i] = acc[i] * rescale + p * kv.v[at + d];
    }
    running_max = new_max;
  }
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) acc_s[warp * hd + d] = acc[i];
  }
  if (lane == 0) {
    max_s[warp] = running_max;
    sum_s[warp] = running_sum;
  }
  __syncthreads();
  // Merge the warps and the state so far (an empty part has max -inf and weight 0).
  const float old_max = fresh ? -INFINITY : row[hd];
  float m = old_max;
  for (int w = 0; w < kWarps; ++w) m = fmaxf(m, max_s[w]);
  float total = old_max == -INFINITY ? 0.f : row[hd + 1] * expf(old_max - m);
  for (int w = 0; w < kWarps; ++w) total += max_s[w] == -INFINITY ? 0.f : sum_s[w] * expf(max_s[w] - m);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = old_max == -INFINITY ? 0.f : row[d] * expf(old_max - m);
    for (int w = 0; w < kWarps; ++w)
      if (max_s[w] != -INFINITY) o += acc_s[w * hd + d] * expf(max_s[w] - m);
    row[d] = o;
  }
  __syncthreads();  // every thread read row[hd] before it is overwritten
  if (threadIdx.x == 0) {
    row[hd] = m;
    row[hd + 1] = total;
  }
}

// The per-KV-head slot counts and spans of chosen_heads_kernel (passed by value).
constexpr int kChosenMaxHeads = 16;
struct ChosenHeads {
  int slots[kChosenMaxHeads];
  int span[kChosenMaxHeads];
};

// ---------------------------------------------------------------------------------------------
// Head dims 64, 128, 256: group_attention.cuh's body, one CTA per (tile of up to kRows query heads of
// the group, share of the listed blocks' slots), each K/V row read once for the group, the shares
// merged into the state by its combine.

#ifndef RL_CHOSEN_ATTENTION_GROUP
#define RL_CHOSEN_ATTENTION_GROUP 1  // 0: the one-CTA-per-query-head kernel for every head dim (A/B)
#endif
#ifndef RL_CHOSEN_ATTENTION_MIN_SPAN
#define RL_CHOSEN_ATTENTION_MIN_SPAN 64
#endif
namespace ga = group_attention;
constexpr int kMinSpan = RL_CHOSEN_ATTENTION_MIN_SPAN;  // fewest slots a CTA takes when the list is split

// Slots: the listed blocks laid end to end, block_size each; a slot past its block's fill is masked
// (and reads the block's last filled row).
struct ChosenSlots {
  const PagedKvF32& kv;
  int kv_head, context, head0, row0, rows, end;
  const int* blocks;
  int out0 = 0;  // the first output row (chosen_heads_kernel: the KV head's rows among all heads')

  __device__ size_t q_row(int r) const { return size_t(head0 + row0 + r); }
  __device__ size_t out_row(int r) const { return size_t(out0 + row0 + r); }
  __device__ int limit(int) const { return end - 1; }
  __device__ bool visible(int slot) const {
    const int lb = slot / kv.block_size;
    return blocks[lb] * kv.block_size + (slot - lb * kv.block_size) < context;
  }
  __device__ void step_rows(int j0, size_t (&at)[ga::kStep]) const {
    int listed = j0 / kv.block_size, offset = j0 - listed * kv.block_size;
    int b = blocks[listed], phys = kv.block_table[b], fill = min(kv.block_size, context - b * kv.block_size);
#pragma unroll
    for (int p = 0; p < ga::kStep; ++p) {
      if (p > 0 && j0 + p < end && ++offset == kv.block_size) {  // past the end: slot end - 1 again
        offset = 0;
        b = blocks[++listed];
        phys = kv.block_table[b];
        fill = min(kv.block_size, context - b * kv.block_size);
      }
      at[p] = ((size_t(phys) * kv.n_kv_heads + kv_head) * kv.block_size + min(offset, fill - 1)) * kv.head_dim;
    }
  }
};

// grid (tiles, splits): rows [tile * rows_per_tile, ...) of the group over slots [split * span, +span).
template <int kHeadDim>
__global__ void __launch_bounds__(ga::kWarps * 32)
    chosen_group_kernel(const PagedKvF32 kv, const int kv_head, const int context, const int* __restrict__ blocks,
                        const int n_slots, const int head0, const int group, const float scale, const float* __restrict__ q,
                        const int rows_per_tile, const int span, float* __restrict__ part_o, float* __restrict__ part_ml) {
  const int row0 = blockIdx.x * rows_per_tile, begin = blockIdx.y * span, end = min(begin + span, n_slots);
  const ChosenSlots slots{kv, kv_head, context, head0, row0, min(rows_per_tile, group - row0), end, blocks};
  ga::attend<kHeadDim>(kv, slots, begin, end, scale, q, part_o, part_ml, nullptr);
}

// Every KV head of a layer in one grid (tiles, splits, KV heads): KV head z takes the listed blocks
// blocks + z * stride with its own slot count and span (those chosen_group gives it alone), its
// partials at rows z * group + ..., empty (max -inf, weight 0) past its own splits.
template <int kHeadDim>
__global__ void __launch_bounds__(ga::kWarps * 32)
    chosen_heads_kernel(const PagedKvF32 kv, const int context, const int* __restrict__ blocks, const int stride,
                        const ChosenHeads heads, const int group, const float scale, const float* __restrict__ q,
                        const int rows_per_tile, float* __restrict__ part_o, float* __restrict__ part_ml) {
  const int z = blockIdx.z, n_slots = heads.slots[z], span = heads.span[z];
  const int row0 = blockIdx.x * rows_per_tile, begin = blockIdx.y * span, end = min(begin + span, n_slots);
  ChosenSlots slots{kv, z, context, z * group, row0, min(rows_per_tile, group - row0), end, blocks + size_t(z) * stride};
  slots.out0 = z * group;
  ga::attend<kHeadDim>(kv, slots, begin, end, scale, q, part_o, part_ml, nullptr);
}

template <int kHeadDim>
int chosen_wave() {
  static const int ctas = ga::measure_wave<kHeadDim>(chosen_group_kernel<kHeadDim>);
  return ctas;
}

// The partials of a call, one buffer per stream (calls on a stream run in order, so one buffer serves
// them all), grown when a call needs more (so the first call on a stream must not be captured in a
// CUDA graph: cudaMalloc would fail, with an error); never freed (a process's few megabytes).
float* split_workspace(cudaStream_t stream, size_t floats) {
  struct Buffer {
    float* data = nullptr;
    size_t floats = 0;
  };
  static std::mutex mutex;
  static std::unordered_map<cudaStream_t, Buffer> buffers;
  const std::lock_guard<std::mutex> lock(mutex);
  Buffer& b = buffers[stream];
  if (b.floats < floats) {
    if (b.data) RL_CUDA_CHECK(cudaFree(b.data));  // waits for the work that used it
    b.data = nullptr;
    RL_CUDA_CHECK(cudaMalloc(&b.data, floats * sizeof(float)));
    b.floats = floats;
  }
  return b.data;
}

// The split of n_slots slots chosen_group makes: `splits` shares of `span` slots.
template <int kHeadDim>
void chosen_split(int n_slots, int group, int& splits, int& span) {
  const int step = ga::kWarps * ga::kStep;
  const int tiles = (group + ga::kRows - 1) / ga::kRows;
  splits = std::min((chosen_wave<kHeadDim>() + tiles - 1) / tiles, (n_slots + kMinSpan - 1) / kMinSpan);
  splits = std::max(splits, 1);
  span = std::max(1, ((n_slots + splits - 1) / splits + step - 1) / step) * step;
  splits = std::max(1, (n_slots + span - 1) / span);
}

template <int kHeadDim>
void chosen_heads(const PagedKvF32& kv, int context, const int* blocks, int stride, const int* n_blocks, int group, float scale,
                  const float* q, float* state, float* out, cudaStream_t stream) {
  const int tiles = (group + ga::kRows - 1) / ga::kRows, rows_per_tile = (group + tiles - 1) / tiles;
  ChosenHeads heads{};
  int most = 1;
  for (int z = 0; z < kv.n_kv_heads; z++) {
    int splits = 0, span = 0;
    heads.slots[z] = n_blocks[z] * kv.block_size;
    chosen_split<kHeadDim>(heads.slots[z], group, splits, span);
    heads.span[z] = span;
    most = std::max(most, splits);
  }
  static const int attribute_set = ga::measure_wave<kHeadDim>(chosen_heads_kernel<kHeadDim>);  // its shared memory limit
  (void)attribute_set;
  const int rows = kv.n_kv_heads * group;
  float* workspace = split_workspace(stream, ga::workspace_floats(rows, most, kHeadDim));
  launch_chained("chosen_attention chosen_heads_kernel", chosen_heads_kernel<kHeadDim>, dim3(tiles, most, kv.n_kv_heads),
                 dim3(ga::kWarps * 32), ga::Smem<kHeadDim>::bytes, stream, kv, context, blocks, stride, heads, group, scale, q,
                 rows_per_tile, workspace, ga::part_ml(workspace, rows, most, kHeadDim));
  ga::combine(workspace, rows, most, kHeadDim, out, state, true, stream);
}

template <int kHeadDim>
void chosen_group(const PagedKvF32& kv, int kv_head, int context, const int* blocks, int n_blocks, int head0, int group,
                  float scale, const float* q, bool fresh, float* state, cudaStream_t stream) {
  const int n_slots = n_blocks * kv.block_size;
  const int tiles = (group + ga::kRows - 1) / ga::kRows, rows_per_tile = (group + tiles - 1) / tiles;
  int splits = 0, span = 0;
  chosen_split<kHeadDim>(n_slots, group, splits, span);
  float* workspace = split_workspace(stream, ga::workspace_floats(group, splits, kHeadDim));
  launch_chained("chosen_attention chosen_group_kernel", chosen_group_kernel<kHeadDim>, dim3(tiles, splits),
                 dim3(ga::kWarps * 32), ga::Smem<kHeadDim>::bytes, stream, kv, kv_head, context, blocks, n_slots, head0,
                 group, scale, q, rows_per_tile, span, workspace, ga::part_ml(workspace, group, splits, kHeadDim));
  ga::combine(workspace, group, splits, kHeadDim, nullptr, state, fresh, stream);
}

__global__ void chosen_attention_write_kernel(const float* __restrict__ state, const int hd, float* __restrict__ out) {
  grid_dependency_wait();
  const float* row = state + size_t(blockIdx.x) * (hd + 2);
  const float total = row[hd + 1];
  for (int d = threadIdx.x; d < hd; d += blockDim.x) out[size_t(blockIdx.x) * hd + d] = total > 0.f ? row[d] / total : 0.f;
}

}  // namespace

bool chosen_attention_supports(int head_dim) { return head_dim > 0 && head_dim <= 32 * kMaxPerLane; }

void chosen_attention_add(const PagedKvF32& kv, int kv_head, int context, const int* blocks, int n_blocks, int head0, int group,
                          float scale, const float* q, bool fresh, float* state, cudaStream_t stream) {
  if (!chosen_attention_supports(kv.head_dim)) throw std::runtime_error("chosen_attention: head_dim must lie in [1, 512]");
  if (group <= 0 || (n_blocks <= 0 && !fresh)) return;
  if (RL_CHOSEN_ATTENTION_GROUP && ga::supports(kv.head_dim)) {
    switch (kv.head_dim) {
      case 64: return chosen_group<64>(kv, kv_head, context, blocks, n_blocks, head0, group, scale, q, fresh, state, stream);
      case 128: return chosen_group<128>(kv, kv_head, context, blocks, n_blocks, head0, group, scale, q, fresh, state, stream);
      default: return chosen_group<256>(kv, kv_head, context, blocks, n_blocks, head0, group, scale, q, fresh, state, stream);
    }
  }
  const size_t smem = (size_t(kv.head_dim) * (1 + kWarps) + 2 * kWarps) * sizeof(float);
  launch_chained("chosen_attention_add_kernel", chosen_attention_add_kernel, dim3(group), dim3(kWarps * 32), smem, stream, kv,
                 kv_head, context, blocks, n_blocks, head0, scale, q, fresh, state);
}

bool chosen_attention_heads_supports(int head_dim, int n_kv_heads) {
  return RL_CHOSEN_ATTENTION_GROUP && ga::supports(head_dim) && n_kv_heads >= 1 && n_kv_heads <= kChosenMaxHeads;
}

void chosen_attention_heads(const PagedKvF32& kv, int context, const int* blocks, int stride, const int* n_blocks, int group, float scale,
                            const float* q, float* state, float* out, cudaStream_t stream) {
  if (!chosen_attention_heads_supports(kv.head_dim, kv.n_kv_heads)) throw std::runtime_error("chosen_attention: heads at once not supported for this shape");
  if (group <= 0) return;
  switch (kv.head_dim) {
    case 64: return chosen_heads<64>(kv, context, blocks, stride, n_blocks, group, scale, q, state, out, stream);
    case 128: return chosen_heads<128>(kv, context, blocks, stride, n_blocks, group, scale, q, state, out, stream);
    default: return chosen_heads<256>(kv, context, blocks, stride, n_blocks, group, scale, q, state, out, stream);
  }
}

void chosen_attention_write(const float* state, int group, int head_dim, float* out, cudaStream_t stream) {
  if (group <= 0) return;
  launch_chained("chosen_attention_write_kernel", chosen_attention_write_kernel, dim3(group), dim3(128), 0, stream, state,
                 head_dim, out);
}

}  // namespace rl::cuda
