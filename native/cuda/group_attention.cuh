// The decode attention body shared by dense_attention.cu and chosen_attention.cu: one CTA attends up
// to kRows query rows that share a KV head (the query heads of its group, for one or a few tokens)
// over a share of that head's positions, so each K/V row is read from memory once for all of them,
// and writes the share's unnormalised softmax sums, max and total (or, unsplit, the output); a
// second kernel merges the shares (flash-decoding). Float32 throughout (cpu/attention.cc's
// arithmetic). Each warp walks its own positions through a cp.async pipeline of kStages steps of
// kStep positions; a lane holds head_dim / 32 dims of every row, so q.k sums over lanes with a
// transposing butterfly (31 shuffles for the 32 sums of a step; lane i ends with sum i = (row
// i / kStep, position i % kStep)), then an online softmax per row, then p.v into per-lane sums.
// The kernels here have internal linkage: each op file that includes this header gets its own.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <stdexcept>

#include "device_util.cuh"
#include "kv_append.cuh"

#ifndef RL_GROUP_ATTENTION_WARPS
#define RL_GROUP_ATTENTION_WARPS 8
#endif
#ifndef RL_GROUP_ATTENTION_STAGES
#define RL_GROUP_ATTENTION_STAGES 2
#endif
#ifndef RL_GROUP_ATTENTION_OVERLAP
#define RL_GROUP_ATTENTION_OVERLAP 1  // 0: q staged before the first loads are issued (A/B)
#endif
#ifndef RL_GROUP_ATTENTION_EARLY_LAUNCH
#define RL_GROUP_ATTENTION_EARLY_LAUNCH 1  // 0: the combine and the kernel after it scheduled only once the previous ends (A/B)
#endif

namespace rl::cuda {
namespace {  // NOLINT: internal to each op file (kernels and their templates)

namespace group_attention {

constexpr int kRows = 8;  // query rows of a CTA (more rows: more tiles, each reading the K/V again)
constexpr int kStep = 4;  // positions a warp scores at once: kRows * kStep = 32 sums, one per lane
static_assert(kRows * kStep == 32, "one score per lane");
constexpr int kWarps = RL_GROUP_ATTENTION_WARPS;
constexpr int kStages = RL_GROUP_ATTENTION_STAGES;  // steps in a warp's pipeline (kStages - 1 in flight)
constexpr bool kOverlap = RL_GROUP_ATTENTION_OVERLAP != 0;
constexpr bool kEarlyLaunch = RL_GROUP_ATTENTION_EARLY_LAUNCH != 0;

inline bool supports(int head_dim) { return head_dim == 64 || head_dim == 128 || head_dim == 256; }

template <int kHeadDim>
struct Smem {
  static constexpr int stage = 2 * kStep * kHeadDim;  // the K rows, then the V rows of one step
  static constexpr int per_warp = kStages * stage;
  static constexpr int stages = kWarps * per_warp;  // also the warps' accumulators at the merge
  static constexpr int q = kRows * kHeadDim;
  static constexpr int probs = kWarps * 32;        // per warp [kRows][kStep]
  static constexpr int rescales = kWarps * kRows;  // per warp [kRows]; also the maxima, the sums
  static constexpr size_t bytes = size_t(stages + q + probs + 3 * rescales) * sizeof(float);
  static_assert(kWarps * kRows * kHeadDim <= stages, "the accumulators overlay the stages");
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

// The body of a CTA. Slots [begin, end) are the CTA's positions, in the order the policy P lists them:
//   int rows;                                    the CTA's query rows (<= kRows)
//   size_t q_row(int r), out_row(int r)          row r's index in q and in the output / partials
//   int limit(int r)                             row r sees slots <= limit(r) (< 0: none)
//   bool visible(int slot)                       a slot holds a position (every row's mask)
//   void step_rows(int j0, size_t (&at)[kStep])  element offsets in kv.k / kv.v of slots j0 + p, a
//                                                readable row for every p (masked slots included)
// Writes part_o [out row][split][kHeadDim] and part_ml [out row][split][2] (split = blockIdx.y), or,
// when part_o is null, out [out row][kHeadDim] normalised.
template <int kHeadDim, class P>
__device__ __forceinline__ void attend(const PagedKvF32& kv, const P& pol, const int begin, const int end, const float scale,
                                       const float* __restrict__ q, float* __restrict__ part_o, float* __restrict__ part_ml,
                                       float* __restrict__ out) {
  using S = Smem<kHeadDim>;
  constexpr int kPer = kHeadDim / 32;  // dims per lane
  extern __shared__ __align__(16) float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, rows = pol.rows;
  float* stages = smem + warp * S::per_warp;
  float* qs = smem + S::stages;                           // [kRows][kHeadDim], rows past `rows` zero
  float* probs = qs + S::q + warp * 32;                   // this warp's [kRows][kStep] of the step
  float* rescales = qs + S::q + S::probs + warp * kRows;  // this warp's [kRows] of the step
  float* max_s = qs + S::q + S::probs + S::rescales;      // [kWarps][kRows] at the merge
  float* sum_s = max_s + S::rescales;

  grid_dependency_wait();

  // Step s of this warp: slots first + s * stride + [0, kStep).
  const int stride = kWarps * kStep, first = begin + warp * kStep;
  const int steps = end > first ? (end - first + stride - 1) / stride : 0;
  auto issue = [&](int s) {
    if (s < steps) {
      float* buf = stages + (s % kStages) * S::stage;
      size_t at[kStep];
      pol.step_rows(first + s * stride, at);
#pragma unroll
      for (int p = 0; p < kStep; ++p) {
#pragma unroll
        for (int c = lane; c < kHeadDim / 4; c += 32) {
          cp_async16(buf + p * kHeadDim + 4 * c, kv.k + at[p] + 4 * c);
          cp_async16(buf + (kStep + p) * kHeadDim + 4 * c, kv.v + at[p] + 4 * c);
        }
      }
    }
    cp_async_commit();  // empty groups past the last step keep the wait count uniform
  };

  // The score this lane owns: row my_row at slot step start + my_pos.
  const int my_row = lane / kStep, my_pos = lane % kStep;
  const int my_limit = my_row < rows ? pol.limit(my_row) : -1;
  float running_max = -INFINITY, running_sum = 0.f;  // my_row's, the same in its kStep lanes
  float acc[kRows][kPer] = {};                        // this lane's dims of every row's sum of p * v

  // The first steps' loads go out before q is staged (their latencies overlap).
  if (kOverlap) {
    for (int s = 0; s < kStages - 1; ++s) issue(s);
  }
  for (int i = threadIdx.x; i < S::q; i += blockDim.x) {
    const int r = i / kHeadDim;
    qs[i] = r < rows ? q[pol.q_row(r) * kHeadDim + i % kHeadDim] : 0.f;
  }
  __syncthreads();
  if (!kOverlap) {
    for (int s = 0; s < kStages - 1; ++s) issue(s);
  }
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

    // Online softmax of my_row over the step's slots (its kStep lanes), shared through probs.
    const int slot = first + s * stride + my_pos;
    const float score = slot <= my_limit && pol.visible(slot) ? x[0] * scale : -INFINITY;
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
  if (kEarlyLaunch) grid_dependency_release();  // the combine may be scheduled now (it waits for this grid to end)
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with its stages: the accumulators overlay them

  float* acc_s = smem;  // [kWarps][kRows][kHeadDim]
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
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, max_s[w * kRows + r]);
    float total = 0.f, o = 0.f;
    for (int w = 0; w < kWarps; ++w) {
      const float mw = max_s[w * kRows + r];
      if (mw != -INFINITY) {
        const float weight = expf(mw - m);
        total += sum_s[w * kRows + r] * weight;
        o += acc_s[(w * kRows + r) * kHeadDim + d] * weight;
      }
    }
    const size_t row = pol.out_row(r);
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

// CTAs of an attend kernel that fill the GPU once (every one resident); sets its shared memory limit.
// Callers keep the answer (a static per kernel): it costs two runtime calls.
template <int kHeadDim, class Kernel>
int measure_wave(Kernel kernel) {
  RL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Smem<kHeadDim>::bytes)));
  int per_sm = 0;
  RL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * 32, Smem<kHeadDim>::bytes));
  if (per_sm < 1) throw std::runtime_error("group attention kernel does not fit on this GPU");
  return per_sm * multiprocessor_count();
}

// ---------------------------------------------------------------------------------------------
// The merge of the splits: part_o [rows][splits][hd], part_ml [rows][splits][2] ->
//   kIntoState false: out [rows][hd] = sum_s o_s e^(m_s - m) / sum_s total_s e^(m_s - m), m the largest max;
//   kIntoState true: state [rows][hd + 2] (unnormalised sums, max, total, chosen_attention.cuh's
//   layout) merged with the state it holds unless `fresh`; everything -inf / 0 when nothing is seen.
// Grid (rows, column slices of `cols` dims: 32, or all of them into a state, whose max and total
// every slice reads); a thread takes 4 dims over every groups-th split (loads in flight), summed in
// shared memory; the weights e^(m_s - m) are computed once per CTA, in shared memory [splits].

constexpr int kCombineThreads = 256;

// The CTA's max or sum of x (cta_reduce), and the barrier after which scratch may be written again.
__device__ __forceinline__ float block_reduce(float x, float* scratch, bool is_max) {
  float v[1] = {x};
  auto per_warp = reinterpret_cast<float(*)[1]>(scratch);  // [warps][1]
  if (is_max) cta_reduce<kCombineThreads>(v, per_warp, [](float a, float b) { return fmaxf(a, b); });
  else cta_reduce<kCombineThreads>(v, per_warp, [](float a, float b) { return a + b; });
  __syncthreads();  // scratch is reused
  return v[0];
}

// kIntoState: merged into the state rows `out`, and where `normalized` is not null, the state's output
// also written there ([rows][hd], as chosen_attention_write computes it from the state).
template <bool kIntoState>
__global__ void __launch_bounds__(kCombineThreads)
    combine_kernel(const float* __restrict__ part_o, const float* __restrict__ part_ml, const int splits, const int hd,
                   const int cols, const bool fresh, float* __restrict__ out, float* __restrict__ normalized) {
  extern __shared__ float weights[];  // [splits]
  __shared__ float sums[4 * kCombineThreads];
  if (kEarlyLaunch) grid_dependency_release();  // the next kernel (o_proj's product) may load its weights meanwhile
  grid_dependency_wait();
  const float* o_rows = part_o + size_t(blockIdx.x) * splits * hd;  // [splits][hd]
  const float* ml = part_ml + size_t(blockIdx.x) * splits * 2;      // [splits][2]
  float* state = out + size_t(blockIdx.x) * (hd + 2);               // kIntoState
  const float old_max = kIntoState && !fresh ? state[hd] : -INFINITY;
  float m = old_max;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) m = fmaxf(m, ml[2 * s]);
  m = block_reduce(m, sums, true);  // -inf only when no split saw a position (into a state)
  const float old_weight = old_max == -INFINITY ? 0.f : expf(old_max - m);
  float total = threadIdx.x == 0 && old_weight != 0.f ? state[hd + 1] * old_weight : 0.f;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) {
    const float w = ml[2 * s] == -INFINITY ? 0.f : expf(ml[2 * s] - m);
    weights[s] = w;
    total += w * ml[2 * s + 1];
  }
  total = block_reduce(total, sums, false);  // its barriers publish the weights

  // A split with weight 0 has o = 0 (no visible position) or a finite o that underflowed: no NaN.
  const int chunks = cols / 4, groups = kCombineThreads / chunks;
  const int chunk = threadIdx.x % chunks, group = threadIdx.x / chunks, d0 = blockIdx.y * cols + 4 * chunk;
  float o[4] = {};
  if (group < groups) {
#pragma unroll 4
    for (int s = group; s < splits; s += groups) {
      const float w = weights[s];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (d0 + i < hd) o[i] += w * o_rows[size_t(s) * hd + d0 + i];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) sums[group * cols + 4 * chunk + i] = o[i];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const int d = blockIdx.y * cols + c;
    if (d >= hd) continue;
    float sum = 0.f;
    for (int g = 0; g < groups; ++g) sum += sums[g * cols + c];
    if constexpr (kIntoState) {
      const float merged = sum + (old_weight != 0.f ? state[d] * old_weight : 0.f);
      state[d] = merged;
      if (normalized) normalized[size_t(blockIdx.x) * hd + d] = total > 0.f ? merged / total : 0.f;
    } else {
      out[size_t(blockIdx.x) * hd + d] = sum / total;
    }
  }
  if constexpr (kIntoState) {
    __syncthreads();  // every thread read the old max and total
    if (threadIdx.x == 0) {
      state[hd] = m;
      state[hd + 1] = total;
    }
  }
}

// The partials of `splits` shares of `rows` rows in a workspace: part_o, then part_ml.
inline size_t workspace_floats(int rows, int splits, int hd) { return size_t(rows) * splits * (hd + 2); }
inline float* part_ml(float* workspace, int rows, int splits, int hd) { return workspace + size_t(rows) * splits * hd; }

// out [rows][hd] normalised (state null), or merged into state [rows][hd + 2] (and where out is not null
// too, its normalised output written to out).
inline void combine(float* workspace, int rows, int splits, int hd, float* out, float* state, bool fresh,
                    cudaStream_t stream) {
  const float* o = workspace;
  const float* ml = part_ml(workspace, rows, splits, hd);
  const size_t smem = size_t(splits) * sizeof(float);
  if (state) {
    const int cols = (hd + 3) / 4 * 4;  // all of a row in one CTA (<= 4 * kCombineThreads dims)
    launch_chained("group_attention combine_kernel<state>", combine_kernel<true>, dim3(rows), dim3(kCombineThreads), smem,
                   stream, o, ml, splits, hd, cols, fresh, state, out);
  } else {
    launch_chained("group_attention combine_kernel", combine_kernel<false>, dim3(rows, (hd + 31) / 32),
                   dim3(kCombineThreads), smem, stream, o, ml, splits, hd, 32, fresh, out, nullptr);
  }
}

}  // namespace group_attention
}  // namespace
}  // namespace rl::cuda
