#include "dense_attention.cuh"

#include <algorithm>
#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kWarps = 16;
constexpr int kPositions = 4;    // positions a warp scores at once (independent loads in flight)
constexpr int kMaxPerLane = 16;  // head_dim <= 32 * 16 = 512 (backend.h's kMaxHeadDim)

__global__ void __launch_bounds__(kWarps * 32)
    dense_attention_kernel(const PagedKvF32 kv, const int pos0, const int n_heads, const float scale,
                           const float* __restrict__ q, const int span, float* __restrict__ partial,
                           float* __restrict__ out) {
  extern __shared__ float smem[];  // q [hd], then per warp: acc [hd], max, sum
  const int hd = kv.head_dim, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = blockIdx.x / n_heads, h = blockIdx.x % n_heads;
  const int kv_head = h / (n_heads / kv.n_kv_heads);
  // This CTA's share of the token's positions: [begin, last], inclusive (empty when begin > last).
  const int begin = blockIdx.y * span;
  const int last = min(pos0 + t, begin + span - 1);
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
  for (int j0 = begin + warp * kPositions; j0 <= last; j0 += kWarps * kPositions) {
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
  // Split over the context: the unnormalised sums, the max and the total go to partial [row][split][hd + 2].
  float* part = partial ? partial + (size_t(blockIdx.x) * gridDim.y + blockIdx.y) * (hd + 2) : nullptr;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kWarps; ++w)
      if (max_s[w] != -INFINITY) o += acc_s[w * hd + d] * expf(max_s[w] - m);
    if (part) part[d] = o;
    else out[size_t(blockIdx.x) * hd + d] = o / total;
  }
  if (part && threadIdx.x == 0) {
    part[hd] = m;
    part[hd + 1] = total;
  }
}

// Merges the splits of each (token, head) row: out = sum_s o_s 2^.. / sum_s total_s (max-shifted).
__global__ void dense_attention_combine(const float* __restrict__ partial, const int splits, const int hd,
                                        float* __restrict__ out) {
  grid_dependency_wait();
  const float* rows = partial + size_t(blockIdx.x) * splits * (hd + 2);
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, rows[s * (hd + 2) + hd]);
  float total = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float ms = rows[s * (hd + 2) + hd];
    if (ms != -INFINITY) total += rows[s * (hd + 2) + hd + 1] * expf(ms - m);
  }
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float ms = rows[s * (hd + 2) + hd];
      if (ms != -INFINITY) o += rows[s * (hd + 2) + d] * expf(ms - m);
    }
    out[size_t(blockIdx.x) * hd + d] = o / total;
  }
}

// Positions per CTA: the whole context when there are enough (token, head) rows to fill the GPU,
// else a share (a multiple of what one pass of the warps scores) so that ~2 CTAs run per SM.
int split_span(int n, int n_heads, int length) {
  const int rows = n * n_heads, step = kWarps * kPositions;
  const int sms = multiprocessor_count();
  if (rows >= sms) return length;
  const int splits = std::min((2 * sms + rows - 1) / rows, (length + step - 1) / step);
  const int span = (length + splits - 1) / splits;
  return (span + step - 1) / step * step;
}

}  // namespace

bool dense_attention_supports(int head_dim) { return head_dim > 0 && head_dim <= 32 * kMaxPerLane; }

size_t dense_attention_workspace_floats(int n, int n_heads, int head_dim, int pos0) {
  const int length = pos0 + n, span = split_span(n, n_heads, length);
  const int splits = (length + span - 1) / span;
  return splits == 1 ? 0 : size_t(n) * n_heads * splits * (head_dim + 2);
}

void dense_attention(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                     float* workspace, cudaStream_t stream) {
  if (n <= 0) return;
  if (!dense_attention_supports(kv.head_dim)) throw std::runtime_error("dense_attention: head_dim must lie in [1, 512]");
  if (n_heads % kv.n_kv_heads != 0) throw std::runtime_error("dense_attention: n_heads must be a multiple of n_kv_heads");
  const int length = pos0 + n, span = split_span(n, n_heads, length);
  const int splits = (length + span - 1) / span;
  if (splits > 1 && !workspace) throw std::runtime_error("dense_attention: a split over the context needs the workspace");
  const size_t smem = (size_t(kv.head_dim) * (1 + kWarps) + 2 * kWarps) * sizeof(float);
  launch_chained("dense_attention_kernel", dense_attention_kernel, dim3(n * n_heads, splits), dim3(kWarps * 32), smem,
                 stream, kv, pos0, n_heads, scale, q, span, splits > 1 ? workspace : nullptr, out);
  if (splits > 1) {
    launch_chained("dense_attention_combine", dense_attention_combine, dim3(n * n_heads), dim3(128), 0, stream,
                   static_cast<const float*>(workspace), splits, kv.head_dim, out);
  }
}

}  // namespace rl::cuda
