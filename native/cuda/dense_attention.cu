#include "dense_attention.cuh"

#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kWarps = 16;
constexpr int kPositions = 4;    // positions a warp scores at once (independent loads in flight)
constexpr int kMaxPerLane = 16;  // head_dim <= 32 * 16 = 512 (backend.h's kMaxHeadDim)

__global__ void __launch_bounds__(kWarps * 32)
    dense_attention_kernel(const PagedKvF32 kv, const int pos0, const int n_heads, const float scale,
                           const float* __restrict__ q, float* __restrict__ out) {
  extern __shared__ float smem[];  // q [hd], then per warp: acc [hd], max, sum
  const int hd = kv.head_dim, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = blockIdx.x / n_heads, h = blockIdx.x % n_heads;
  const int kv_head = h / (n_heads / kv.n_kv_heads);
  const int last = pos0 + t;  // inclusive
  float* qs = smem;
  float* acc_s = smem + hd;                  // [kWarps][hd]
  float* max_s = acc_s + kWarps * hd;        // [kWarps]
  float* sum_s = max_s + kWarps;             // [kWarps]
  grid_dependency_wait();
  for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[size_t(blockIdx.x) * hd + d];
  __syncthreads();

  float acc[kMaxPerLane] = {};
  float running_max = -INFINITY, running_sum = 0.f;
  // Warp w takes positions [j0, j0 + kPositions) for j0 = w * kPositions, then every kWarps * kPositions.
  for (int j0 = warp * kPositions; j0 <= last; j0 += kWarps * kPositions) {
    size_t rows[kPositions];  // offsets of the positions' key (and value) rows
    float dot[kPositions];
#pragma unroll
    for (int p = 0; p < kPositions; ++p) {
      const int j = min(j0 + p, last);  // past `last`: a valid row, masked below
      const int phys = kv.block_table[j / kv.block_size];
      rows[p] = ((size_t(phys) * kv.n_kv_heads + kv_head) * kv.block_size + j % kv.block_size) * hd;
      dot[p] = 0.f;
    }
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) {
#pragma unroll
        for (int p = 0; p < kPositions; ++p) dot[p] += qs[d] * kv.k[rows[p] + d];
      }
    }
    float score[kPositions];
    float block_max = -INFINITY;
#pragma unroll
    for (int p = 0; p < kPositions; ++p) {
      score[p] = warp_sum(dot[p]) * scale;
      if (j0 + p <= last) block_max = fmaxf(block_max, score[p]);
    }
    const float new_max = fmaxf(running_max, block_max);  // finite: position j0 <= last counts
    const float rescale = expf(running_max - new_max);    // 0 on the first positions
    float prob[kPositions];
    running_sum *= rescale;
#pragma unroll
    for (int p = 0; p < kPositions; ++p) {
      prob[p] = j0 + p <= last ? expf(score[p] - new_max) : 0.f;
      running_sum += prob[p];
    }
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) {
        float a = acc[i] * rescale;
#pragma unroll
        for (int p = 0; p < kPositions; ++p) a += prob[p] * kv.v[rows[p] + d];
        acc[i] = a;
      }
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
  // Merge the warps' partial softmaxes (a warp with no position has max -inf and weight 0).
  float m = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m = fmaxf(m, max_s[w]);
  float total = 0.f;
  for (int w = 0; w < kWarps; ++w) total += max_s[w] == -INFINITY ? 0.f : sum_s[w] * expf(max_s[w] - m);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kWarps; ++w)
      if (max_s[w] != -INFINITY) o += acc_s[w * hd + d] * expf(max_s[w] - m);
    out[size_t(blockIdx.x) * hd + d] = o / total;
  }
}

}  // namespace

bool dense_attention_supports(int head_dim) { return head_dim > 0 && head_dim <= 32 * kMaxPerLane; }

void dense_attention(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                     cudaStream_t stream) {
  if (n <= 0) return;
  if (!dense_attention_supports(kv.head_dim)) throw std::runtime_error("dense_attention: head_dim must lie in [1, 512]");
  if (n_heads % kv.n_kv_heads != 0) throw std::runtime_error("dense_attention: n_heads must be a multiple of n_kv_heads");
  const size_t smem = (size_t(kv.head_dim) * (1 + kWarps) + 2 * kWarps) * sizeof(float);
  launch_chained("dense_attention_kernel", dense_attention_kernel, dim3(n * n_heads), dim3(kWarps * 32), smem, stream,
                 kv, pos0, n_heads, scale, q, out);
}

}  // namespace rl::cuda
