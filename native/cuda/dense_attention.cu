#include "dense_attention.cuh"

#include <algorithm>
#include <stdexcept>

#include "device_util.cuh"

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
// Decode-sized calls (a few tokens): one CTA per (KV head, tile of up to kRows query rows, share of
// the context), a row being a (token, query head of the KV head's group) pair, so that each K/V row
// is read from memory once per step for the whole group rather than once per query head.
// Each warp walks its own positions through a cp.async pipeline of kStages steps of kStep positions;
// a lane holds head_dim / 32 dims of every row, so q.k sums over lanes (a transposing butterfly:
// 31 shuffles for the 32 sums of a step, lane i ends with sum i = (row i / kStep, position i % kStep)).

#ifndef RL_DENSE_DECODE_WARPS
#define RL_DENSE_DECODE_WARPS 4
#endif
#ifndef RL_DENSE_DECODE_STAGES
#define RL_DENSE_DECODE_STAGES 3
#endif
#ifndef RL_DENSE_DECODE_MAX_TOKENS
#define RL_DENSE_DECODE_MAX_TOKENS 16
#endif
#ifndef RL_DENSE_DECODE_MIN_SPAN
#define RL_DENSE_DECODE_MIN_SPAN 64
#endif
constexpr int kRows = 8;  // query rows of a CTA (more rows: more tiles, each reading the K/V again)
constexpr int kStep = 4;  // positions a warp scores at once: kRows * kStep = 32 sums, one per lane
static_assert(kRows * kStep == 32, "one score per lane");
constexpr int kDecodeWarps = RL_DENSE_DECODE_WARPS;
constexpr int kStages = RL_DENSE_DECODE_STAGES;           // steps in a warp's pipeline (kStages - 1 in flight)
constexpr int kDecodeMaxTokens = RL_DENSE_DECODE_MAX_TOKENS;  // larger calls take the per-(token, head) kernel
constexpr int kMinSpan = RL_DENSE_DECODE_MIN_SPAN;        // fewest positions a CTA takes when the context is split

template <int kHeadDim>
struct DecodeSmem {
  static constexpr int stage = 2 * kStep * kHeadDim;  // the K rows, then the V rows of one step
  static constexpr int per_warp = kStages * stage;
  static constexpr int stages = kDecodeWarps * per_warp;  // also the warps' accumulators at the merge
  static constexpr int q = kRows * kHeadDim;
  static constexpr int probs = kDecodeWarps * 32;         // per warp [kRows][kStep]
  static constexpr int rescales = kDecodeWarps * kRows;   // per warp [kRows]; also the maxima, the sums
  static constexpr size_t bytes = size_t(stages + q + probs + 3 * rescales) * sizeof(float);
  static_assert(kDecodeWarps * kRows * kHeadDim <= stages, "the accumulators overlay the stages");
};

// The dims lane holds of a row of kHeadDim floats: [2 lane, 2 lane + 2) for head_dim 64, else the
// 4-float chunks lane, lane + 32, ... (consecutive lanes read consecutive 8 or 16 bytes).
template <int kHeadDim>
__device__ __forceinline__ int lane_dim(int lane, int i) {
  if constexpr (kHeadDim == 64) return 2 * lane + i;
  else return 4 * (lane + 32 * (i / 4)) + i % 4;
}
template <int kHeadDim>
__device__ __forceinline__ void load_lane(const float* row, int lane, float (&x)[kHeadDim / 32]) {
  if constexpr (kHeadDim == 64) {
    const float2 v = *reinterpret_cast<const float2*>(row + 2 * lane);
    x[0] = v.x;
    x[1] = v.y;
  } else {
#pragma unroll
    for (int c = 0; c < kHeadDim / 128; ++c) {
      const float4 v = *reinterpret_cast<const float4*>(row + 4 * (lane + 32 * c));
      x[4 * c] = v.x;
      x[4 * c + 1] = v.y;
      x[4 * c + 2] = v.z;
      x[4 * c + 3] = v.w;
    }
  }
}

// x[i] for i < 32, each this lane's part of sum i -> x[0] = the warp's sum number `lane`. Each round
// halves the values a lane keeps: the upper half of the lanes keeps the upper half of the sums.
template <int kHalf>
__device__ __forceinline__ void transpose_sum(float (&x)[32], int lane) {
  const bool upper = (lane & kHalf) != 0;
#pragma unroll
  for (int i = 0; i < kHalf; ++i) {
    const float keep = upper ? x[i + kHalf] : x[i];
    const float send = upper ? x[i] : x[i + kHalf];
    x[i] = keep + __shfl_xor_sync(0xffffffffu, send, kHalf);
  }
  if constexpr (kHalf > 1) transpose_sum<kHalf / 2>(x, lane);
}

// grid (n_kv_heads * tiles, splits); CTA (kv head, tile) takes rows [tile * rows_per_tile, ...) of the
// group's n * group rows (row = token * group + head in group) over positions [split * span, +span).
// Unsplit: writes out. Split: the unnormalised sums to part_o [q row][split][hd], the max and the total to
// part_ml [q row][split][2].
template <int kHeadDim>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    group_decode_kernel(const PagedKvF32 kv, const int pos0, const int n, const int n_heads, const float scale,
                        const float* __restrict__ q, const int tiles, const int rows_per_tile, const int span,
                        float* __restrict__ part_o, float* __restrict__ part_ml, float* __restrict__ out) {
  using S = DecodeSmem<kHeadDim>;
  constexpr int kPer = kHeadDim / 32;  // dims per lane
  extern __shared__ __align__(16) float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int group = n_heads / kv.n_kv_heads;
  const int kv_head = blockIdx.x / tiles, row0 = (blockIdx.x % tiles) * rows_per_tile;
  const int rows = min(rows_per_tile, n * group - row0);
  const int begin = blockIdx.y * span, end = min(begin + span, pos0 + n);  // positions [begin, end)
  float* stages = smem + warp * S::per_warp;
  float* qs = smem + S::stages;                            // [kRows][kHeadDim], rows past `rows` zero
  float* probs = qs + S::q + warp * 32;                    // this warp's [kRows][kStep] of the step
  float* rescales = qs + S::q + S::probs + warp * kRows;   // this warp's [kRows] of the step
  float* max_s = qs + S::q + S::probs + S::rescales;       // [kDecodeWarps][kRows] at the merge
  float* sum_s = max_s + S::rescales;
  // Row r of this CTA is q / out row (token * n_heads + query head).
  auto q_row = [&](int r) { const int t = (row0 + r) / group; return t * n_heads + kv_head * group + (row0 + r) % group; };

  grid_dependency_wait();
  for (int i = threadIdx.x; i < S::q; i += blockDim.x) {
    const int r = i / kHeadDim;
    qs[i] = r < rows ? q[size_t(q_row(r)) * kHeadDim + i % kHeadDim] : 0.f;
  }
  __syncthreads();

  // Step s of this warp: positions begin + (s * kDecodeWarps + warp) * kStep + [0, kStep).
  const int stride = kDecodeWarps * kStep, first = begin + warp * kStep;
  const int steps = end > first ? (end - first + stride - 1) / stride : 0;
  auto issue = [&](int s) {
    if (s < steps) {
      float* buf = stages + (s % kStages) * S::stage;
      const int j0 = first + s * stride;
      int block = j0 / kv.block_size, offset = j0 - block * kv.block_size;  // of position j0 + p below
      int phys = kv.block_table[block];
#pragma unroll
      for (int p = 0; p < kStep; ++p) {
        if (p > 0 && j0 + p < end && ++offset == kv.block_size) {  // past the end: row end - 1 again, masked below
          offset = 0;
          phys = kv.block_table[++block];
        }
        const size_t row = ((size_t(phys) * kv.n_kv_heads + kv_head) * kv.block_size + offset) * kHeadDim;
        for (int c = lane; c < kHeadDim / 4; c += 32) {
          cp_async16(buf + p * kHeadDim + 4 * c, kv.k + row + 4 * c);
          cp_async16(buf + (kStep + p) * kHeadDim + 4 * c, kv.v + row + 4 * c);
        }
      }
    }
    cp_async_commit();  // empty groups past the last step keep the wait count uniform
  };

  // The score this lane owns: row my_row at position step start + my_pos; visible up to my_limit.
  const int my_row = lane / kStep, my_pos = lane % kStep;
  const int my_limit = my_row < rows ? min(pos0 + (row0 + my_row) / group, end - 1) : -1;
  float running_max = -INFINITY, running_sum = 0.f;  // my_row's, the same in its kStep lanes
  float acc[kRows][kPer] = {};                        // this lane's dims of every row's sum of p * v

  for (int s = 0; s < kStages - 1; ++s) issue(s);
  for (int s = 0; s < steps; ++s) {
    issue(s + kStages - 1);
    cp_async_wait<kStages - 1>();
    __syncwarp();
    const float* keys = stages + (s % kStages) * S::stage;  // [kStep][kHeadDim]
    const float* values = keys + kStep * kHeadDim;         // [kStep][kHeadDim]

    float x[32];  // this lane's part of q_r . k_p at x[r * kStep + p]
    {
      float k[kStep][kPer];
#pragma unroll
      for (int p = 0; p < kStep; ++p) load_lane<kHeadDim>(keys + p * kHeadDim, lane, k[p]);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float qr[kPer];
        load_lane<kHeadDim>(qs + r * kHeadDim, lane, qr);
#pragma unroll
        for (int p = 0; p < kStep; ++p) {
          float dot = 0.f;
          if (r < rows) {  // rows past `rows` (a group under kRows) are masked: no products
#pragma unroll
            for (int i = 0; i < kPer; ++i) dot += qr[i] * k[p][i];
          }
          x[r * kStep + p] = dot;
        }
      }
    }
    transpose_sum<16>(x, lane);

    // Online softmax of my_row over the step's positions (its kStep lanes), shared through probs.
    const float score = first + s * stride + my_pos <= my_limit ? x[0] * scale : -INFINITY;
    float step_max = score;
#pragma unroll
    for (int off = 1; off < kStep; off *= 2) step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, off));
    const float new_max = fmaxf(running_max, step_max);
    float prob = 0.f, rescale = 1.f;  // a row with nothing visible yet stays at 0
    if (new_max != -INFINITY) {
      prob = expf(score - new_max);
      rescale = expf(running_max - new_max);  // 0 on the first visible position
    }
    float step_sum = prob;
#pragma unroll
    for (int off = 1; off < kStep; off *= 2) step_sum += __shfl_xor_sync(0xffffffffu, step_sum, off);
    running_sum = running_sum * rescale + step_sum;
    running_max = new_max;
    probs[lane] = prob;
    if (my_pos == 0) rescales[my_row] = rescale;
    __syncwarp();

    float v[kStep][kPer];
#pragma unroll
    for (int p = 0; p < kStep; ++p) load_lane<kHeadDim>(values + p * kHeadDim, lane, v[p]);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r < rows) {
        const float4 pr = *reinterpret_cast<const float4*>(probs + r * kStep);
        const float a = rescales[r];
#pragma unroll
        for (int i = 0; i < kPer; ++i)
          acc[r][i] = acc[r][i] * a + pr.x * v[0][i] + pr.y * v[1][i] + pr.z * v[2][i] + pr.w * v[3][i];
      }
    }
    __syncwarp();  // the stage and probs are rewritten by the next step
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with its stages: the accumulators overlay them

  float* acc_s = smem;  // [kDecodeWarps][kRows][kHeadDim]
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r < rows) {
#pragma unroll
      for (int i = 0; i < kPer; ++i) acc_s[(warp * kRows + r) * kHeadDim + lane_dim<kHeadDim>(lane, i)] = acc[r][i];
    }
  }
  if (my_pos == 0) {
    max_s[warp * kRows + my_row] = running_max;
    sum_s[warp * kRows + my_row] = running_sum;
  }
  __syncthreads();
  // Merge the warps' partial softmaxes (a warp with no visible position has max -inf and weight 0).
  for (int i = threadIdx.x; i < rows * kHeadDim; i += blockDim.x) {
    const int r = i / kHeadDim, d = i % kHeadDim;
    float m = -INFINITY;
    for (int w = 0; w < kDecodeWarps; ++w) m = fmaxf(m, max_s[w * kRows + r]);
    float total = 0.f, o = 0.f;
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float mw = max_s[w * kRows + r];
      if (mw != -INFINITY) {
        const float weight = expf(mw - m);
        total += sum_s[w * kRows + r] * weight;
        o += acc_s[(w * kRows + r) * kHeadDim + d] * weight;
      }
    }
    const size_t row = q_row(r);
    if (part_o) {
      const size_t part = row * gridDim.y + blockIdx.y;
      part_o[part * kHeadDim + d] = o;
      if (d == 0) {
        part_ml[2 * part] = m;
        part_ml[2 * part + 1] = total;
      }
    } else {
      out[row * kHeadDim + d] = o / total;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The merge of a split context, for both kernels: out[row][d] = sum_s o_s e^(m_s - m) / sum_s total_s
// e^(m_s - m), m the largest max. Grid (rows, ceil(hd / 32)): a CTA takes 32 dims of a row, a thread 4
// of them over every kSplitGroups-th split (independent loads in flight), summed in shared memory.
// The weights e^(m_s - m) are computed once per CTA, in shared memory [splits].

constexpr int kCombineWarps = 8;
constexpr int kSplitGroups = kCombineWarps * 32 / 8;  // 8 threads of 4 dims cover 32 dims

__device__ __forceinline__ float block_reduce(float x, float* scratch, bool is_max) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  x = is_max ? warp_max(x) : warp_sum(x);
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = scratch[0];
  for (int w = 1; w < kCombineWarps; ++w) x = is_max ? fmaxf(x, scratch[w]) : x + scratch[w];
  __syncthreads();  // scratch is reused
  return x;
}

__global__ void __launch_bounds__(kCombineWarps * 32)
    combine_splits(const float* __restrict__ part_o, const float* __restrict__ part_ml, const int splits, const int hd,
                   float* __restrict__ out) {
  extern __shared__ float weights[];  // [splits]
  __shared__ float sums[kSplitGroups][33];
  grid_dependency_wait();
  const float* o_rows = part_o + size_t(blockIdx.x) * splits * hd;  // [splits][hd]
  const float* ml = part_ml + size_t(blockIdx.x) * splits * 2;      // [splits][2]
  float m = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) m = fmaxf(m, ml[2 * s]);
  m = block_reduce(m, &sums[0][0], true);  // finite: split 0 holds position 0, visible to every row
  float total = 0.f;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) {
    const float w = ml[2 * s] == -INFINITY ? 0.f : expf(ml[2 * s] - m);
    weights[s] = w;
    total += w * ml[2 * s + 1];
  }
  total = block_reduce(total, &sums[0][0], false);  // its barriers publish the weights

  // A split with weight 0 has o = 0 (no visible position) or a finite o that underflowed: no NaN.
  const int chunk = threadIdx.x % 8, group = threadIdx.x / 8, d0 = blockIdx.y * 32 + 4 * chunk;
  float o[4] = {};
#pragma unroll 4
  for (int s = group; s < splits; s += kSplitGroups) {
    const float w = weights[s];
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (d0 + i < hd) o[i] += w * o_rows[size_t(s) * hd + d0 + i];
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) sums[group][4 * chunk + i] = o[i];
  __syncthreads();
  const int d = blockIdx.y * 32 + threadIdx.x;
  if (threadIdx.x < 32 && d < hd) {
    float sum = 0.f;
    for (int g = 0; g < kSplitGroups; ++g) sum += sums[g][threadIdx.x];
    out[size_t(blockIdx.x) * hd + d] = sum / total;
  }
}

// The workspace of a split: part_o [rows][splits][hd], then part_ml [rows][splits][2].
float* split_ml(float* workspace, int rows, int splits, int hd) { return workspace + size_t(rows) * splits * hd; }

void combine(float* workspace, int rows, int splits, int hd, float* out, cudaStream_t stream) {
  launch_chained("dense_attention combine_splits", combine_splits, dim3(rows, (hd + 31) / 32), dim3(kCombineWarps * 32),
                 size_t(splits) * sizeof(float), stream, static_cast<const float*>(workspace),
                 static_cast<const float*>(split_ml(workspace, rows, splits, hd)), splits, hd, out);
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

bool group_decode_supports(int n, int head_dim) {
  return n <= kDecodeMaxTokens && (head_dim == 64 || head_dim == 128 || head_dim == 256);
}

template <int kHeadDim>
int group_decode_ctas_per_sm() {
  static const int count = [] {
    const auto kernel = group_decode_kernel<kHeadDim>;
    RL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(DecodeSmem<kHeadDim>::bytes)));
    int ctas = 0;
    RL_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas, kernel, kDecodeWarps * 32, DecodeSmem<kHeadDim>::bytes));
    if (ctas < 1) throw std::runtime_error("dense_attention: the decode kernel does not fit on this GPU");
    return ctas;
  }();
  return count;
}

// CTAs that fill the GPU once (every one resident).
int group_decode_wave(int head_dim) {
  static const int sms = multiprocessor_count();
  switch (head_dim) {
    case 64: return sms * group_decode_ctas_per_sm<64>();
    case 128: return sms * group_decode_ctas_per_sm<128>();
    default: return sms * group_decode_ctas_per_sm<256>();
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
  const int rows = n * (n_heads / n_kv), length = pos0 + n, step = kDecodeWarps * kStep;
  g.tiles = (rows + kRows - 1) / kRows;
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
  group_decode_ctas_per_sm<kHeadDim>();  // the shared memory attribute is set before the first launch
  launch_chained("dense_attention group_decode_kernel", group_decode_kernel<kHeadDim>,
                 dim3(kv.n_kv_heads * g.tiles, g.splits), dim3(kDecodeWarps * 32), DecodeSmem<kHeadDim>::bytes, stream,
                 kv, pos0, n, n_heads, scale, q, g.tiles, g.rows_per_tile, g.span, g.splits > 1 ? workspace : nullptr,
                 g.splits > 1 ? split_ml(workspace, n * n_heads, g.splits, kHeadDim) : nullptr, out);
  if (g.splits > 1) combine(workspace, n * n_heads, g.splits, kHeadDim, out, stream);
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
  return splits == 1 ? 0 : size_t(n) * n_heads * splits * (head_dim + 2);
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
                 splits > 1 ? split_ml(workspace, n * n_heads, splits, kv.head_dim) : nullptr, out);
  if (splits > 1) combine(workspace, n * n_heads, splits, kv.head_dim, out, stream);
}

}  // namespace rl::cuda
