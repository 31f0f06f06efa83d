#include "dense_attention.cuh"

#include <algorithm>
#include <stdexcept>

#include "device_util.cuh"
#include "group_attention.cuh"

namespace rl::cuda {
namespace {

// ---------------------------------------------------------------------------------------------
// Prefill-sized calls: one CTA per (token, query head).

constexpr int kWarps = 16;
constexpr int kPositions = 4;    // positions a warp scores at once (independent loads in flight)
constexpr int kMaxPerLane = 16;  // head_dim <= 32 * 16 = 512 (backend.h's kMaxHeadDim)

__global__ void __launch_bounds__(kWarps * 32)
    dense_attention_kernel(const PagedKvF32 kv, const int pos0, const int n_heads, const float scale,
                           const float* __restrict__ q, const int span, float* __restrict__ part_o,
                           float* __restrict__ part_ml, float* __restrict__ out) {
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
  // Split over the context: the unnormalised sums to part_o [row][split][hd], the max and the total to
  // part_ml [row][split][2].
  const size_t part = size_t(blockIdx.x) * gridDim.y + blockIdx.y;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kWarps; ++w)
      if (max_s[w] != -INFINITY) o += acc_s[w * hd + d] * expf(max_s[w] - m);
    if (part_o) part_o[part * hd + d] = o;
    else out[size_t(blockIdx.x) * hd + d] = o / total;
  }
  if (part_o && threadIdx.x == 0) {
    part_ml[2 * part] = m;
    part_ml[2 * part + 1] = total;
  }
}

// ---------------------------------------------------------------------------------------------
// Decode-sized calls (a few tokens): group_attention.cuh's body, one CTA per (KV head, tile of up to
// kRows (token, query head of its group) rows, share of the context).

#ifndef RL_DENSE_DECODE_MAX_TOKENS
#define RL_DENSE_DECODE_MAX_TOKENS 16
#endif
#ifndef RL_DENSE_DECODE_MIN_SPAN
#define RL_DENSE_DECODE_MIN_SPAN 64
#endif
namespace ga = group_attention;
constexpr int kDecodeMaxTokens = RL_DENSE_DECODE_MAX_TOKENS;  // larger calls take the per-(token, head) kernel
constexpr int kMinSpan = RL_DENSE_DECODE_MIN_SPAN;            // fewest positions a CTA takes when the context is split

// Rows [row0, row0 + rows) of the KV head's n * group rows (row = token * group + head in group);
// slots are positions, the CTA's up to `end`.
struct DenseSlots {
  const PagedKvF32& kv;
  int kv_head, pos0, n_heads, group, row0, rows, end;

  __device__ size_t q_row(int r) const {
    const int g = row0 + r;
    return size_t(g / group) * n_heads + kv_head * group + g % group;
  }
  __device__ size_t out_row(int r) const { return q_row(r); }
  __device__ int limit(int r) const { return min(pos0 + (row0 + r) / group, end - 1); }
  __device__ bool visible(int) const { return true; }
  // One table lookup and division per step (the next block only when the step crosses one);
  // past the end: row end - 1 again, masked by limit().
  __device__ void step_rows(int j0, size_t (&at)[ga::kStep]) const {
    int block = j0 / kv.block_size, offset = j0 - block * kv.block_size;
    int phys = kv.block_table[block];
#pragma unroll
    for (int p = 0; p < ga::kStep; ++p) {
      if (p > 0 && j0 + p < end && ++offset == kv.block_size) {
        offset = 0;
        phys = kv.block_table[++block];
      }
      at[p] = ((size_t(phys) * kv.n_kv_heads + kv_head) * kv.block_size + offset) * kv.head_dim;
    }
  }
};

// grid (n_kv_heads * tiles, splits); CTA (kv head, tile) takes rows [tile * rows_per_tile, ...) over
// positions [split * span, +span).
template <int kHeadDim>
__global__ void __launch_bounds__(ga::kWarps * 32)
    group_decode_kernel(const PagedKvF32 kv, const int pos0, const int n, const int n_heads, const float scale,
                        const float* __restrict__ q, const int tiles, const int rows_per_tile, const int span,
                        float* __restrict__ part_o, float* __restrict__ part_ml, float* __restrict__ out) {
  const int group = n_heads / kv.n_kv_heads, row0 = (blockIdx.x % tiles) * rows_per_tile;
  const int begin = blockIdx.y * span, end = min(begin + span, pos0 + n);
  const DenseSlots slots{kv, int(blockIdx.x) / tiles, pos0, n_heads, group, row0, min(rows_per_tile, n * group - row0), end};
  ga::attend<kHeadDim>(kv, slots, begin, end, scale, q, part_o, part_ml, out);
}

// ---------------------------------------------------------------------------------------------
// Launch geometry.

// Positions per CTA of the per-(token, head) kernel: the whole context when there are enough
// (token, head) rows to fill the GPU, else a share (a multiple of what one pass of the warps
// scores) so that ~2 CTAs run per SM.
int split_span(int n, int n_heads, int length) {
  const int rows = n * n_heads, step = kWarps * kPositions;
  const int sms = multiprocessor_count();
  if (rows >= sms) return length;
  const int splits = std::min((2 * sms + rows - 1) / rows, (length + step - 1) / step);
  const int span = (length + splits - 1) / splits;
  return (span + step - 1) / step * step;
}

bool group_decode_supports(int n, int head_dim) { return n <= kDecodeMaxTokens && ga::supports(head_dim); }

template <int kHeadDim>
int group_decode_wave() {
  static const int ctas = ga::measure_wave<kHeadDim>(group_decode_kernel<kHeadDim>);
  return ctas;
}
int group_decode_wave(int head_dim) {
  switch (head_dim) {
    case 64: return group_decode_wave<64>();
    case 128: return group_decode_wave<128>();
    default: return group_decode_wave<256>();
  }
}

// The most splits a call of this length takes for any number of KV heads (the workspace's bound).
int group_decode_split_bound(int head_dim, int length) {
  return std::max(1, std::min(group_decode_wave(head_dim), (length + kMinSpan - 1) / kMinSpan));
}

struct DecodeGrid {
  int tiles, rows_per_tile, splits, span;
};

// Tiles of at most kRows rows, as even as can be; the context split so that one wave of CTAs runs.
DecodeGrid group_decode_grid(int n, int n_heads, int n_kv, int head_dim, int pos0) {
  DecodeGrid g;
  const int rows = n * (n_heads / n_kv), length = pos0 + n, step = ga::kWarps * ga::kStep;
  g.tiles = (rows + ga::kRows - 1) / ga::kRows;
  g.rows_per_tile = (rows + g.tiles - 1) / g.tiles;
  const int ctas = n_kv * g.tiles, wave = group_decode_wave(head_dim);
  const int splits = std::min((wave + ctas - 1) / ctas, group_decode_split_bound(head_dim, length));
  g.span = ((length + splits - 1) / splits + step - 1) / step * step;
  g.splits = (length + g.span - 1) / g.span;
  return g;
}

template <int kHeadDim>
void group_decode(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                  float* workspace, cudaStream_t stream) {
  const DecodeGrid g = group_decode_grid(n, n_heads, kv.n_kv_heads, kHeadDim, pos0);
  if (g.splits > 1 && !workspace) throw std::runtime_error("dense_attention: a split over the context needs the workspace");
  const int rows = n * n_heads;
  launch_chained("dense_attention group_decode_kernel", group_decode_kernel<kHeadDim>,
                 dim3(kv.n_kv_heads * g.tiles, g.splits), dim3(ga::kWarps * 32), ga::Smem<kHeadDim>::bytes, stream, kv,
                 pos0, n, n_heads, scale, q, g.tiles, g.rows_per_tile, g.span, g.splits > 1 ? workspace : nullptr,
                 g.splits > 1 ? ga::part_ml(workspace, rows, g.splits, kHeadDim) : nullptr, out);
  if (g.splits > 1) ga::combine(workspace, rows, g.splits, kHeadDim, out, nullptr, false, stream);
}

}  // namespace

bool dense_attention_supports(int head_dim) { return head_dim > 0 && head_dim <= 32 * kMaxPerLane; }

size_t dense_attention_workspace_floats(int n, int n_heads, int head_dim, int pos0) {
  const int length = pos0 + n;
  int splits;
  if (group_decode_supports(n, head_dim)) {
    splits = group_decode_split_bound(head_dim, length);
  } else {
    const int span = split_span(n, n_heads, length);
    splits = (length + span - 1) / span;
  }
  return splits == 1 ? 0 : ga::workspace_floats(n * n_heads, splits, head_dim);
}

void dense_attention(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                     float* workspace, cudaStream_t stream) {
  if (n <= 0) return;
  if (!dense_attention_supports(kv.head_dim)) throw std::runtime_error("dense_attention: head_dim must lie in [1, 512]");
  if (n_heads % kv.n_kv_heads != 0) throw std::runtime_error("dense_attention: n_heads must be a multiple of n_kv_heads");
  if (group_decode_supports(n, kv.head_dim)) {
    switch (kv.head_dim) {
      case 64: return group_decode<64>(kv, pos0, n, n_heads, scale, q, out, workspace, stream);
      case 128: return group_decode<128>(kv, pos0, n, n_heads, scale, q, out, workspace, stream);
      default: return group_decode<256>(kv, pos0, n, n_heads, scale, q, out, workspace, stream);
    }
  }
  const int length = pos0 + n, span = split_span(n, n_heads, length);
  const int splits = (length + span - 1) / span;
  if (splits > 1 && !workspace) throw std::runtime_error("dense_attention: a split over the context needs the workspace");
  const size_t smem = (size_t(kv.head_dim) * (1 + kWarps) + 2 * kWarps) * sizeof(float);
  launch_chained("dense_attention_kernel", dense_attention_kernel, dim3(n * n_heads, splits), dim3(kWarps * 32), smem,
                 stream, kv, pos0, n_heads, scale, q, span, splits > 1 ? workspace : nullptr,
                 splits > 1 ? ga::part_ml(workspace, n * n_heads, splits, kv.head_dim) : nullptr, out);
  if (splits > 1) ga::combine(workspace, n * n_heads, splits, kv.head_dim, out, nullptr, false, stream);
}

}  // namespace rl::cuda
