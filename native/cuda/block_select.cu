#include "block_select.cuh"

#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kScoreThreads = 256;
constexpr int kScoreUnroll = 4;    // blocks per lane group in flight
constexpr int kTopkThreads = 512;
constexpr int kTopkMaxBlocks = 8192;  // blocks per sequence the selection handles (256K positions at 32)
constexpr int kTopkPerThread = kTopkMaxBlocks / kTopkThreads;
constexpr int kRadixBins = 4096;      // the widest radix digit: 12 bits
constexpr float kNegBig = -1e30f;     // "no term yet": finite, so 2^(kNegBig - m) is 0, never NaN

// Float -> unsigned with the same order (larger float, larger unsigned).
__device__ __forceinline__ unsigned ordered_bits(float f) {
  const unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Scores blocks for one KV head (blockIdx.y): kChunks lanes share one block's summary row, each
// holding 8 dims of every query of the group in registers. Besides each block's bounds, each warp
// writes per query head the pair (m, s) of its blocks' terms t = ub + log2 fill: m their largest,
// s the sum of 2^(t - m), so the normalisers need no pass over the bounds.
template <int D, int G>
__global__ void __launch_bounds__(kScoreThreads)
    block_score_kernel(const float* __restrict__ q, const PagedKvLayer kv, const float scale_log2,
                       float* __restrict__ upper_bounds, float2* __restrict__ warp_pairs) {
  constexpr int kChunks = D / 8;
  constexpr int kPerWarp = 32 / kChunks;  // blocks a warp scores per step
  const int kvh = blockIdx.y;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int chunk = lane % kChunks;
  const int n = kv.n_logical();
  grid_dependency_wait();

  float qr[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int j = 0; j < 8; ++j) qr[g][j] = q[size_t(kvh * G + g) * D + chunk * 8 + j] * scale_log2;

  const int base = (blockIdx.x * (kScoreThreads / 32) + warp) * kPerWarp * kScoreUnroll + lane / kChunks;
  uint4 lo_raw[kScoreUnroll], hi_raw[kScoreUnroll];
#pragma unroll
  for (int u = 0; u < kScoreUnroll; ++u) {
    const int b = base + u * kPerWarp;
    lo_raw[u] = hi_raw[u] = make_uint4(0, 0, 0, 0);
    if (b < n) {
      const size_t off = kv.summary_offset(kv.block_table[b], kvh) + chunk * 8;
      lo_raw[u] = __ldg(reinterpret_cast<const uint4*>(kv.key_min + off));
      hi_raw[u] = __ldg(reinterpret_cast<const uint4*>(kv.key_max + off));
    }
  }
  grid_dependency_release();
  const float log2_full = log2f(float(kv.block_size));
  float term[kScoreUnroll][G];
#pragma unroll
  for (int u = 0; u < kScoreUnroll; ++u) {
    const int b = base + u * kPerWarp;
    float lo[8], hi[8], ub[G];
    unpack8(lo_raw[u], lo);
    unpack8(hi_raw[u], hi);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      ub[g] = 0.f;
#pragma unroll
      for (int j = 0; j < 8; ++j) ub[g] += fmaxf(qr[g][j] * lo[j], qr[g][j] * hi[j]);
#pragma unroll
      for (int off = 1; off < kChunks; off <<= 1) ub[g] += __shfl_xor_sync(0xffffffffu, ub[g], off);
    }
    if (b < n && chunk == 0) {
#pragma unroll
      for (int g = 0; g < G; ++g) upper_bounds[(size_t(kvh) * n + b) * G + g] = ub[g];
    }
    const float log2_fill = b == n - 1 ? log2f(float(kv.fill(b))) : log2_full;
#pragma unroll
    for (int g = 0; g < G; ++g) term[u][g] = b < n ? ub[g] + log2_fill : kNegBig;
  }
  // This lane's pair, then the warp's (lanes kChunks apart hold other blocks).
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float m = kNegBig, sum = 0.f;
#pragma unroll
    for (int u = 0; u < kScoreUnroll; ++u) m = fmaxf(m, term[u][g]);
#pragma unroll
    for (int u = 0; u < kScoreUnroll; ++u) sum += term[u][g] > kNegBig ? exp2_ftz(term[u][g] - m) : 0.f;
#pragma unroll
    for (int off = kChunks; off < 32; off <<= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, off), sum2 = __shfl_xor_sync(0xffffffffu, sum, off);
      const float top = fmaxf(m, m2);
      sum = sum * exp2_ftz(m - top) + sum2 * exp2_ftz(m2 - top);
      m = top;
    }
    if (lane == 0) warp_pairs[(size_t(kvh) * gridDim.x * (kScoreThreads / 32) + blockIdx.x * (kScoreThreads / 32) + warp) * G + g] =
        make_float2(m, sum);
  }
}

// CTA-wide reduction of N values per thread (op: fmaxf or a sum); every thread gets the results.
// scratch is [warps][N] shared memory, used by this call only (no trailing barrier needed).
template <int N, typename Op>
__device__ __forceinline__ void cta_reduce(float (&v)[N], float (*scratch)[N], Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < N; ++j) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v[j] = op(v[j], __shfl_xor_sync(0xffffffffu, v[j], off));
    if (lane == 0) scratch[warp][j] = v[j];
  }
  __syncthreads();
  constexpr int kWarps = kTopkThreads / 32;  // a power of 2, at most 32
#pragma unroll
  for (int j = 0; j < N; ++j) {
    v[j] = scratch[lane % kWarps][j];
#pragma unroll
    for (int off = kWarps / 2; off > 0; off >>= 1) v[j] = op(v[j], __shfl_xor_sync(0xffffffffu, v[j], off));
  }
}

// Calls f(j) for j = 0 .. kTopkPerThread - 1 in chunks of kChunk, skipping chunks at or past
// `count`: the loads of a chunk go out together, and no more than a chunk's are held in
// registers at once.
template <int kChunk, typename F>
__device__ __forceinline__ void for_chunks(int count, F f) {
#pragma unroll
  for (int c = 0; c < kTopkPerThread; c += kChunk)
    if (c < count) {
#pragma unroll
      for (int j = c; j < c + kChunk; ++j) f(j);
    }
}

// One CTA per KV head: keeps the k largest keys (ties: lowest ids), writes them ascending, and
// bounds the left-out blocks' softmax numerators per query head. Thread t reads the bounds of
// blocks t, t + kTopkThreads, ... (coalesced; L1 after the first pass) and keeps their keys in
// registers for the radix passes; the compaction reads the keys in id order from shared memory.
template <int G>
__global__ void __launch_bounds__(kTopkThreads)
    block_topk_kernel(const float* __restrict__ upper_bounds, const float2* __restrict__ warp_pairs, const int n_pairs,
                      const PagedKvLayer kv, const int k, const int sink_blocks, const int recent_blocks,
                      const int selected_stride, int* __restrict__ selected, float* __restrict__ log2_left_out) {
  using Scan = cub::BlockScan<int, kTopkThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ unsigned bins[2][kRadixBins];  // a pass's histogram; the other one is cleared meanwhile
  __shared__ unsigned s_prefix, s_want, s_count;
  __shared__ float max_scratch[kTopkThreads / 32][G];
  __shared__ float sum_scratch[kTopkThreads / 32][G];
  __shared__ float left_scratch[kTopkThreads / 32][G + 1];
  extern __shared__ unsigned staged[];  // [n] the keys; 0 (never a key) once a block is kept

  const int kvh = blockIdx.x;
  const int n = kv.n_logical();
  const int tid = threadIdx.x, lane = tid & 31;
  for (int i = tid; i < kRadixBins; i += kTopkThreads) bins[0][i] = 0;  // ordered by the barriers below
  grid_dependency_wait();
  const float* ub = upper_bounds + size_t(kvh) * n * G;  // [n][G], log2 units
  // log2 of a block's fill: every block is full but the last.
  const float log2_full = log2f(float(kv.block_size)), log2_tail = log2f(float(kv.fill(n - 1)));
  const int count = tid < n ? (n - tid + kTopkThreads - 1) / kTopkThreads : 0;  // this thread's blocks
  constexpr int kChunk = G <= 4 ? 8 : 4;  // blocks whose bounds are loaded together
  // t_g = ub_g + log2 fill of block tid + j * kTopkThreads: log2 of the bound on its softmax
  // numerator for query head g. Loads are unconditional (past the end: the last block again) so a
  // chunk's go out together; callers mask by j < count.
  auto terms = [&](int j, float (&t)[G]) {
    const int i = min(tid + j * kTopkThreads, n - 1);
    const float log2_fill = i == n - 1 ? log2_tail : log2_full;
    if constexpr (G % 4 == 0) {  // 16-byte loads: the workspace and each block's row are 16-byte aligned
#pragma unroll
      for (int g = 0; g < G; g += 4) {
        const float4 x = *reinterpret_cast<const float4*>(ub + size_t(i) * G + g);
        t[g] = x.x, t[g + 1] = x.y, t[g + 2] = x.z, t[g + 3] = x.w;
      }
    } else {
#pragma unroll
      for (int g = 0; g < G; ++g) t[g] = ub[size_t(i) * G + g];
    }
#pragma unroll
    for (int g = 0; g < G; ++g) t[g] += log2_fill;
  };

  // Normalisers LSE_g = log2 of the sum of 2^t_g over every block, from the score kernel's pairs:
  // the largest m, then the sum of s * 2^(m - largest).
  const float2* pairs = warp_pairs + size_t(kvh) * n_pairs * G;  // [n_pairs][G]
  constexpr int kMaxPairs = 2;  // pairs a thread reads: n_pairs <= kTopkMaxBlocks / 8 + 8 <= 2 * kTopkThreads
  float lse[G], sum[G];
  float2 pair[kMaxPairs][G];
#pragma unroll
  for (int p = 0; p < kMaxPairs; ++p)
#pragma unroll
    for (int g = 0; g < G; ++g)
      pair[p][g] = tid + p * kTopkThreads < n_pairs ? pairs[size_t(tid + p * kTopkThreads) * G + g] : make_float2(kNegBig, 0.f);
#pragma unroll
  for (int g = 0; g < G; ++g) {
    lse[g] = kNegBig;
#pragma unroll
    for (int p = 0; p < kMaxPairs; ++p) lse[g] = fmaxf(lse[g], pair[p][g].x);
  }
  cta_reduce<G>(lse, max_scratch, [](float a, float b) { return fmaxf(a, b); });
#pragma unroll
  for (int g = 0; g < G; ++g) {
    sum[g] = 0.f;
#pragma unroll
    for (int p = 0; p < kMaxPairs; ++p) sum[g] += pair[p][g].y * exp2_ftz(pair[p][g].x - lse[g]);
  }
  cta_reduce<G>(sum, sum_scratch, [](float a, float b) { return a + b; });
#pragma unroll
  for (int g = 0; g < G; ++g) lse[g] += log2f(sum[g]);

  // Ranking key, as the CPU selection ranks (prhs/selection.h): each query head's estimated share
  // of the block, 2^(t_g - LSE_g), summed over the group. Sink and recent blocks rank first (+inf).
  unsigned key[kTopkPerThread];
#pragma unroll
  for (int j = 0; j < kTopkPerThread; ++j) key[j] = 0u;
  for_chunks<kChunk>(count, [&](int j) {
    float t[G], share = 0.f;
    terms(j, t);
#pragma unroll
    for (int g = 0; g < G; ++g) share += exp2_ftz(t[g] - lse[g]);
    const int i = tid + j * kTopkThreads;
    const bool forced = i < sink_blocks || i >= n - recent_blocks;
    if (j < count) staged[i] = key[j] = ordered_bits(forced ? INFINITY : share);
  });

  // Radix select from the top, 12, 12 and 8 bits a pass: after it, keys whose bits under `mask`
  // exceed `prefix` are kept, and the first `want` (in id order) of those equal to it. A pass
  // whose boundary digit is taken whole ends the search (usually the second).
  unsigned prefix = 0, mask = 0, want = unsigned(k);
#pragma unroll 1
  for (int pass = 0; pass < 3; ++pass) {
    const int width = pass == 2 ? 8 : 12, shift = pass == 0 ? 20 : pass == 1 ? 8 : 0;
    const unsigned digit_mask = (1u << width) - 1;
    unsigned* hist = bins[pass & 1];
    // The other histogram's last reader passed the previous pass's final barrier.
    if (pass < 2)
      for (int i = tid; i < kRadixBins; i += kTopkThreads) bins[(pass + 1) & 1][i] = 0;
#pragma unroll
    for (int j = 0; j < kTopkPerThread; ++j) {
      if (j * kTopkThreads >= n) break;  // uniform: no thread has a block j
      const bool match = j < count && (key[j] & mask) == prefix;
      const unsigned digit = (key[j] >> shift) & digit_mask;
      const unsigned active = __ballot_sync(0xffffffffu, match);
      if (match) {
        // Lanes with the same digit add once: keys of one head often share their top bits.
        const unsigned peers = __match_any_sync(active, digit);
        if (__ffs(peers) - 1 == lane) atomicAdd(&hist[digit], unsigned(__popc(peers)));
      }
    }
    __syncthreads();
    // Thread t counts digits from the top: n_digits - 1 - t * per_thread down.
    const int n_digits = 1 << width;
    const int digits_per_thread = n_digits >= kTopkThreads ? n_digits / kTopkThreads : 1;
    unsigned c[kRadixBins / kTopkThreads], total = 0;
#pragma unroll
    for (int j = 0; j < kRadixBins / kTopkThreads; ++j) {
      const int d = n_digits - 1 - (tid * digits_per_thread + j);
      c[j] = j < digits_per_thread && d >= 0 ? hist[d] : 0u;
      total += c[j];
    }
    int before;
    Scan(scan_storage).ExclusiveSum(int(total), before);
    if (unsigned(before) < want && want <= unsigned(before) + total) {
      unsigned cum = unsigned(before);
      bool found = false;
#pragma unroll
      for (int j = 0; j < kRadixBins / kTopkThreads; ++j) {
        if (!found && cum + c[j] >= want) {
          found = true;
          s_prefix = prefix | (unsigned(n_digits - 1 - (tid * digits_per_thread + j)) << shift);
          s_want = want - cum;
          s_count = c[j];
        }
        cum += c[j];
      }
    }
    __syncthreads();
    prefix = s_prefix;
    want = s_want;
    mask |= digit_mask << shift;
    if (s_count == want) break;  // uniform: every thread read the same values
  }

  // Compaction in id order: thread t owns ids [t * per, (t + 1) * per). One scan of both counts
  // packed in 16-bit halves (n <= 8192): ties are taken in id order, so this thread's ids land
  // after every greater key before it and the first `want` equal ones.
  const int per = (n + kTopkThreads - 1) / kTopkThreads;
  const int lo = min(tid * per, n), hi = min(lo + per, n);
  int greater = 0, equal = 0;
  for (int i = lo; i < hi; ++i) {
    const unsigned u = staged[i] & mask;
    greater += u > prefix;
    equal += u == prefix;
  }
  int packed_before;
  Scan(scan_storage).ExclusiveSum((equal << 16) | greater, packed_before);
  const int equal_before = packed_before >> 16, greater_before = packed_before & 0xFFFF;
  const int take_equal = max(0, min(equal, int(want) - equal_before));
  int offset = greater_before + min(equal_before, int(want));
  int* out = selected + size_t(kvh) * selected_stride;
  int taken_equal = 0;
  for (int i = lo; i < hi; ++i) {
    const unsigned u = staged[i] & mask;
    if (u > prefix || (u == prefix && taken_equal++ < take_equal)) {
      out[offset++] = i;
      staged[i] = 0u;
    }
  }
  __syncthreads();

  // Left-out bound per query head: U_g = sum over left-out blocks of 2^t_g, summed as
  // 2^LSE_g * sum 2^(t_g - LSE_g) (every term <= 1). A term below 2^-126 is flushed to zero, so
  // each left-out block adds 2^-126 besides: U stays an upper bound.
  float left[G + 1];  // the sums, then the count of left-out blocks
#pragma unroll
  for (int g = 0; g <= G; ++g) left[g] = 0.f;
  for_chunks<kChunk>(count, [&](int j) {
    float t[G];
    terms(j, t);
    const bool left_out = j < count && staged[tid + j * kTopkThreads] != 0u;
#pragma unroll
    for (int g = 0; g < G; ++g) left[g] += left_out ? exp2_ftz(t[g] - lse[g]) : 0.f;
    left[G] += left_out ? 1.f : 0.f;
  });
  grid_dependency_release();
  cta_reduce<G + 1>(left, left_scratch, [](float a, float b) { return a + b; });
#pragma unroll
  for (int g = 0; g < G; ++g) {  // thread g writes head g (a constant index keeps lse and left in registers)
    if (tid != g) continue;
    const float total = left[g] + left[G] * 0x1p-126f;
    // +1e-4 in log2 units (a factor 1.00007) covers float rounding of the terms and the sum, so U
    // stays an upper bound of the exact left-out sum for the computed bounds.
    log2_left_out[kvh * G + g] = left[G] > 0.f ? lse[g] + log2f(total) + 1e-4f : -INFINITY;
  }
}

// The workspace: the bounds [n_kv][n][G], then the score kernel's pairs (16-byte aligned).
size_t pairs_offset(int n_kv_heads, int group, int n_logical_blocks) {
  return (size_t(n_kv_heads) * n_logical_blocks * group + 3) / 4 * 4;
}

template <int D, int G>
void launch(const BlockSelectArgs& a, int k, cudaStream_t stream) {
  const int n = a.kv.n_logical();
  const int n_kv = a.kv.n_kv_heads;
  float* upper_bounds = a.workspace;  // [n_kv][n][G]
  const int per_cta = (kScoreThreads / 32) * (32 / (D / 8)) * kScoreUnroll;
  const int score_ctas = (n + per_cta - 1) / per_cta;
  const int n_pairs = score_ctas * (kScoreThreads / 32);  // one a warp
  float2* warp_pairs = reinterpret_cast<float2*>(a.workspace + pairs_offset(n_kv, G, n));  // [n_kv][n_pairs][G]
  launch_chained("block_score_kernel", block_score_kernel<D, G>, dim3(score_ctas, n_kv), dim3(kScoreThreads), 0,
                 stream, a.q, a.kv, a.scale * 1.4426950408889634f, upper_bounds, warp_pairs);
  static const bool topk_configured = [] {  // keys need up to 32 KB beside ~36 KB of static shared memory
    RL_CUDA_CHECK(cudaFuncSetAttribute(block_topk_kernel<G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(kTopkMaxBlocks * sizeof(unsigned))));
    return true;
  }();
  (void)topk_configured;
  launch_chained("block_topk_kernel", block_topk_kernel<G>, dim3(n_kv), dim3(kTopkThreads), n * sizeof(unsigned), stream,
                 static_cast<const float*>(upper_bounds), static_cast<const float2*>(warp_pairs), n_pairs, a.kv, k,
                 a.sink_blocks, a.recent_blocks, a.budget,                  a.selected, a.log2_left_out);
}

template <int D>
void dispatch_group(const BlockSelectArgs& a, int group, int k, cudaStream_t s) {
  switch (group) {
    case 1: return launch<D, 1>(a, k, s);
    case 2: return launch<D, 2>(a, k, s);
    case 4: return launch<D, 4>(a, k, s);
    case 6: return launch<D, 6>(a, k, s);
    case 7: return launch<D, 7>(a, k, s);
    case 8: return launch<D, 8>(a, k, s);
    default: throw std::runtime_error("block_select: no kernel for GQA group " + std::to_string(group));
  }
}

}  // namespace

size_t block_select_workspace_floats(int n_kv_heads, int group, int n_logical_blocks) {
  // The most pairs: head dim 128, 64 blocks a score CTA, 8 warps each.
  const size_t max_pairs = size_t(n_logical_blocks + 63) / 64 * (kScoreThreads / 32);
  return pairs_offset(n_kv_heads, group, n_logical_blocks) + size_t(n_kv_heads) * max_pairs * group * 2;
}

void block_select(const BlockSelectArgs& a, cudaStream_t stream) {
  const int n_kv = a.kv.n_kv_heads;
  if (n_kv <= 0 || a.n_heads % n_kv != 0) throw std::runtime_error("block_select: n_heads must be a multiple of n_kv_heads");
  if (!a.kv.key_min || !a.kv.key_max) throw std::runtime_error("block_select: block summaries missing");
  if (a.budget <= 0) throw std::runtime_error("block_select: budget must be positive");
  if (a.kv.n_logical() > kTopkMaxBlocks)
    throw std::runtime_error("block_select: at most " + std::to_string(kTopkMaxBlocks) + " blocks per sequence");
  const int k = std::min(a.budget, a.kv.n_logical());
  const int group = a.n_heads / n_kv;
  if (a.kv.head_dim == 64) dispatch_group<64>(a, group, k, stream);
  else if (a.kv.head_dim == 128) dispatch_group<128>(a, group, k, stream);
  else throw std::runtime_error("block_select: no kernel for head_dim " + std::to_string(a.kv.head_dim));
}

}  // namespace rl::cuda
