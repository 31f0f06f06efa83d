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

// Float -> unsigned with the same order (larger float, larger unsigned).
__device__ __forceinline__ unsigned ordered_bits(float f) {
  const unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Scores blocks for one KV head (blockIdx.y): kChunks lanes share one block's summary row, each
// holding 8 dims of every query of the group in registers.
template <int D, int G>
__global__ void __launch_bounds__(kScoreThreads)
    block_score_kernel(const float* __restrict__ q, const PagedKvLayer kv, const float scale_log2,
                       float* __restrict__ upper_bounds) {
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
  }
}

__device__ __forceinline__ float from_ordered_bits(unsigned u) {
  return __uint_as_float((u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u);
}

// CTA-wide max (as ordered bits) and sum of G values per thread; every thread gets the result.
// scratch is [warps][G] shared memory; the trailing barrier lets the caller reuse it.
template <int G>
__device__ void cta_max(unsigned (&v)[G], unsigned (*scratch)[G]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    v[g] = __reduce_max_sync(0xffffffffu, v[g]);
    if (lane == 0) scratch[warp][g] = v[g];
  }
  __syncthreads();
#pragma unroll
  for (int g = 0; g < G; ++g) {
    v[g] = scratch[0][g];
    for (int w = 1; w < kTopkThreads / 32; ++w) v[g] = max(v[g], scratch[w][g]);
  }
  __syncthreads();
}
template <int G>
__device__ void cta_sum(float (&v)[G], float (*scratch)[G]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    v[g] = warp_sum(v[g]);
    if (lane == 0) scratch[warp][g] = v[g];
  }
  __syncthreads();
#pragma unroll
  for (int g = 0; g < G; ++g) {
    v[g] = 0.f;
    for (int w = 0; w < kTopkThreads / 32; ++w) v[g] += scratch[w][g];
  }
  __syncthreads();
}

// One CTA per KV head: keeps the k largest keys (ties: lowest ids), writes them ascending, and
// bounds the left-out blocks' softmax numerators per query head. Keys are order-preserving bits
// (block_score_kernel), staged in shared memory.
template <int G>
__global__ void __launch_bounds__(kTopkThreads)
    block_topk_kernel(const float* __restrict__ upper_bounds, const PagedKvLayer kv, const int k,
                      const int sink_blocks, const int recent_blocks, const int selected_stride,
                      int* __restrict__ selected, float* __restrict__ log2_left_out) {
  using Scan = cub::BlockScan<int, kTopkThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ unsigned bins[256];  // the radix pass's histogram (a warp adds once per digit it holds)
  __shared__ unsigned s_prefix, s_want;
  __shared__ bool left_out_flag[kTopkMaxBlocks];
  __shared__ unsigned warp_max_bits[kTopkThreads / 32][G];
  __shared__ float warp_sums[kTopkThreads / 32][G];
  extern __shared__ unsigned staged[];  // [n] the keys

  const int kvh = blockIdx.x;
  const int n = kv.n_logical();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  grid_dependency_wait();
  const float* ub = upper_bounds + size_t(kvh) * n * G;  // [n][G], log2 units
  // log2 of a block's fill: every block is full but the last (one log2 here, not one per block and pass).
  const float log2_full = log2f(float(kv.block_size)), log2_tail = log2f(float(kv.fill(n - 1)));
  auto log2_fill_of = [&](int i) { return i == n - 1 ? log2_tail : log2_full; };

  // Ranking key, as the CPU selection ranks (prhs/selection.h): each query head's estimated share
  // of the block, 2^(ub_g + log2 fill - LSE_g) with LSE_g over every block, summed over the group.
  // Sink and recent blocks rank first (+inf).
  unsigned mx[G];
#pragma unroll
  for (int g = 0; g < G; ++g) mx[g] = ordered_bits(-INFINITY);
#pragma unroll 4
  for (int i = tid; i < n; i += kTopkThreads) {
    const float log2_fill = log2_fill_of(i);
#pragma unroll
    for (int g = 0; g < G; ++g) mx[g] = max(mx[g], ordered_bits(ub[size_t(i) * G + g] + log2_fill));
  }
  cta_max<G>(mx, warp_max_bits);
  float lse[G];
#pragma unroll
  for (int g = 0; g < G; ++g) lse[g] = 0.f;
#pragma unroll 4
  for (int i = tid; i < n; i += kTopkThreads) {
    const float log2_fill = log2_fill_of(i);
#pragma unroll
    for (int g = 0; g < G; ++g) lse[g] += exp2f(ub[size_t(i) * G + g] + log2_fill - from_ordered_bits(mx[g]));
  }
  cta_sum<G>(lse, warp_sums);
#pragma unroll
  for (int g = 0; g < G; ++g) lse[g] = from_ordered_bits(mx[g]) + log2f(lse[g]);
  unsigned* key = staged;
#pragma unroll 4
  for (int i = tid; i < n; i += kTopkThreads) {
    const float log2_fill = log2_fill_of(i);
    float share = 0.f;
#pragma unroll
    for (int g = 0; g < G; ++g) share += exp2f(ub[size_t(i) * G + g] + log2_fill - lse[g]);
    const bool forced = i < sink_blocks || i >= n - recent_blocks;
    key[i] = ordered_bits(forced ? INFINITY : share);
  }
  __syncthreads();

  // Radix select, 8 bits a pass from the top: after it, `prefix` is the k-th largest key and
  // `want` how many keys equal to it belong to the top k.
  unsigned prefix = 0, want = unsigned(k);
  const int n_round = (n + kTopkThreads - 1) / kTopkThreads * kTopkThreads;  // whole warps call match_any
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += kTopkThreads) bins[i] = 0;
    __syncthreads();
    const unsigned high = shift == 24 ? 0u : (0xFFFFFFFFu << (shift + 8));
    for (int i = tid; i < n_round; i += kTopkThreads) {
      const unsigned u = i < n ? key[i] : 0u;
      const bool match = i < n && (u & high) == (prefix & high);
      const unsigned digit = (u >> shift) & 255u;
      const unsigned active = __ballot_sync(0xffffffffu, match);
      if (match) {
        // Lanes with the same digit add once: keys of one head often share their top bits.
        const unsigned peers = __match_any_sync(active, digit);
        if (__ffs(peers) - 1 == lane) atomicAdd(&bins[digit], unsigned(__popc(peers)));
      }
    }
    __syncthreads();
    if (warp == 0) {
      // Lane L holds digits 255 - 8L down to 248 - 8L; scan counts from the largest digit.
      unsigned c[8], total = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) total += (c[j] = bins[255 - 8 * lane - j]);
      unsigned inclusive = total;
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const unsigned y = __shfl_up_sync(0xffffffffu, inclusive, off);
        if (lane >= off) inclusive += y;
      }
      const unsigned before = inclusive - total;
      if (before < want && want <= inclusive) {
        unsigned cum = before;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          if (cum + c[j] >= want) {
            s_prefix = prefix | (unsigned(255 - 8 * lane - j) << shift);
            s_want = want - cum;
            break;
          }
          cum += c[j];
        }
      }
    }
    __syncthreads();
    prefix = s_prefix;
    want = s_want;
  }

  // Compaction in id order: thread t owns ids [t * per, (t + 1) * per).
  const int per = (n + kTopkThreads - 1) / kTopkThreads;
  const int lo = min(tid * per, n), hi = min(lo + per, n);
  int greater = 0, equal = 0;
  for (int i = lo; i < hi; ++i) {
    greater += key[i] > prefix;
    equal += key[i] == prefix;
  }
  // One scan of both counts packed in 16-bit halves (n <= 8192): ties are taken in id order, so
  // this thread's ids land after every greater key before it and the first `want` equal ones.
  int packed_before;
  Scan(scan_storage).ExclusiveSum((equal << 16) | greater, packed_before);
  const int equal_before = packed_before >> 16, greater_before = packed_before & 0xFFFF;
  const int take_equal = max(0, min(equal, int(want) - equal_before));
  int offset = greater_before + min(equal_before, int(want));

  int* out = selected + size_t(kvh) * selected_stride;
  int taken_equal = 0;
  for (int i = lo; i < hi; ++i) {
    const unsigned u = key[i];
    const bool keep = u > prefix || (u == prefix && taken_equal++ < take_equal);
    if (keep) out[offset++] = i;
    left_out_flag[i] = !keep;
  }
  __syncthreads();

  // Left-out bound per query head: U_g = sum over left-out blocks of fill * 2^ub_g, computed as
  // 2^shift_g * sum 2^(ub_g + log2 fill - shift_g) with shift_g the largest left-out term, so no
  // term overflows and only terms below 2^-126 of the largest can vanish. Two passes over the
  // bounds (ids strided over the threads so the loads overlap): the maxima, then the sums.
  unsigned term_max[G];
#pragma unroll
  for (int g = 0; g < G; ++g) term_max[g] = ordered_bits(-INFINITY);
#pragma unroll 4
  for (int i = tid; i < n; i += kTopkThreads) {
    // -inf for kept blocks; loads are unconditional so the unrolled iterations overlap them.
    const float log2_fill = left_out_flag[i] ? log2_fill_of(i) : -INFINITY;
#pragma unroll
    for (int g = 0; g < G; ++g) term_max[g] = max(term_max[g], ordered_bits(ub[size_t(i) * G + g] + log2_fill));
  }
  cta_max<G>(term_max, warp_max_bits);
  float shift[G], sum[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    shift[g] = from_ordered_bits(term_max[g]);
    sum[g] = 0.f;
  }
#pragma unroll 4
  for (int i = tid; i < n; i += kTopkThreads) {
    const float log2_fill = left_out_flag[i] ? log2_fill_of(i) : -INFINITY;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float term = ub[size_t(i) * G + g] + log2_fill;
      if (term > -INFINITY) sum[g] += exp2f(term - shift[g]);  // shift[g] is finite here
    }
  }
  grid_dependency_release();
  cta_sum<G>(sum, warp_sums);
  if (tid < G) {
    const float total = sum[tid];
    // +1e-4 in log2 units (a factor 1.00007) covers float rounding of the sum, so U stays an
    // upper bound of the exact left-out sum for the computed scores.
    log2_left_out[kvh * G + tid] = total > 0.f ? shift[tid] + log2f(total) + 1e-4f : -INFINITY;
  }
}

template <int D, int G>
void launch(const BlockSelectArgs& a, int k, cudaStream_t stream) {
  const int n = a.kv.n_logical();
  const int n_kv = a.kv.n_kv_heads;
  float* upper_bounds = a.workspace;  // [n_kv][n][G]
  const int per_cta = (kScoreThreads / 32) * (32 / (D / 8)) * kScoreUnroll;
  launch_chained("block_score_kernel", block_score_kernel<D, G>, dim3((n + per_cta - 1) / per_cta, n_kv),
                 dim3(kScoreThreads), 0, stream, a.q, a.kv, a.scale * 1.4426950408889634f, upper_bounds);
  static const bool topk_configured = [] {  // keys need up to 32 KB beside ~27 KB of static shared memory
    RL_CUDA_CHECK(cudaFuncSetAttribute(block_topk_kernel<G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(kTopkMaxBlocks * sizeof(unsigned))));
    return true;
  }();
  (void)topk_configured;
  launch_chained("block_topk_kernel", block_topk_kernel<G>, dim3(n_kv), dim3(kTopkThreads), n * sizeof(unsigned),
                 stream, static_cast<const float*>(upper_bounds), a.kv, k, a.sink_blocks, a.recent_blocks, a.budget,
                 a.selected, a.log2_left_out);
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
  return size_t(n_kv_heads) * n_logical_blocks * group;
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
