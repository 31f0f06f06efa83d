#include "chosen_attention.cuh"

#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxPerLane = 16;  // head_dim <= 32 * 16 = 512 (backend.h's kMaxHeadDim)

// One CTA per query head of the group. Warp w scores positions w, w + kWarps, ... of the listed
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
  if (group <= 0) return;
  const size_t smem = (size_t(kv.head_dim) * (1 + kWarps) + 2 * kWarps) * sizeof(float);
  launch_chained("chosen_attention_add_kernel", chosen_attention_add_kernel, dim3(group), dim3(kWarps * 32), smem, stream, kv,
                 kv_head, context, blocks, n_blocks, head0, scale, q, fresh, state);
}

void chosen_attention_write(const float* state, int group, int head_dim, float* out, cudaStream_t stream) {
  if (group <= 0) return;
  launch_chained("chosen_attention_write_kernel", chosen_attention_write_kernel, dim3(group), dim3(128), 0, stream, state,
                 head_dim, out);
}

}  // namespace rl::cuda
