#include "block_select.cuh"

#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "device_util.cuh"
#include "mma.cuh"

namespace rl::cuda {
namespace {

constexpr int kScoreThreads = 256;
constexpr int kScoreMaxBlocks = 128;  // blocks a score CTA stages: 64 KB of rows at head dim 128
constexpr int kScoreMinBlocks = 64;   // 8 warps, a tile of 8 blocks each
constexpr int kSelectThreads = 512;   // keys and choice: a thread per block of a range
constexpr int kMaxBlocks = 8192;      // blocks per sequence the selection handles (256K positions at 32)
constexpr int kMaxRanges = kMaxBlocks / kSelectThreads;  // also a head's keys a thread holds in the choice
constexpr int kMaxPairs = 2;          // score kernel pairs a thread reads: at most 8 warps a 64 blocks
constexpr int kRadixBins = 4096;      // the widest radix digit: 12 bits
constexpr float kNegBig = -1e30f;     // "no term yet": finite, so 2^(kNegBig - m) is 0, never NaN

// Float -> unsigned with the same order (larger float, larger unsigned).
__device__ __forceinline__ unsigned ordered_bits(float f) {
  const unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Scores the blocks [blockIdx.x * per_cta, +per_cta) of KV head blockIdx.y on the tensor cores.
// max(q_d * lo_d, q_d * hi_d) is q+_d * hi_d + q-_d * lo_d (q+ = max(q, 0), q- = min(q, 0), as
// lo <= hi), so ub = [q+ | q-] . [hi | lo]: an m16n8k16 product with the group's query heads as
// rows 0..7 (hi + lo fp16 halves of q: float32-level accuracy; the summaries are fp16 already) and
// 8 blocks as columns. The CTA's summary rows are first copied to shared memory all at once
// (cp.async: every CTA of the grid has its whole share in flight), those of the fixed blocks while
// the previous kernel still runs. Besides each block's bounds, each warp writes per query head the
// pair (m, s) of its blocks' terms t = ub + log2 fill: m their largest, s the sum of 2^(t - m), so
// the normalisers need no pass over the bounds.
// It also zeroes the n_zero words at zeroed (the next kernels' histograms and counts).
template <int D, int G>
__global__ void __launch_bounds__(kScoreThreads, 2)
    block_score_kernel(const float* __restrict__ q, const PagedKvLayer kv, const float scale_log2, const int per_cta,
                       const int fixed_blocks, float* __restrict__ upper_bounds, float2* __restrict__ warp_pairs,
                       unsigned* __restrict__ zeroed, const int n_zero) {
  static_assert(G <= 8, "query heads of a group are rows 0..7 of the MMA tile");
  constexpr int kChunks = D / 8;   // 16-byte chunks in a summary row
  constexpr int kSteps = D / 16;   // k-steps of a row
  constexpr int kWarps = kScoreThreads / 32;
  extern __shared__ uint4 rows[];  // [per_cta][min, max][kChunks], chunk c of block t at c ^ (t & 7)
  const int kvh = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n = kv.n_logical();
  const int first = blockIdx.x * per_cta;

  // Thread t copies chunks t, t + kScoreThreads, ... of the CTA's rows: a warp, whole rows. Rows
  // of blocks below fixed_blocks are copied before the wait for the previous kernel (which does
  // not write them), the others after it.
  constexpr int kCopies = kScoreMaxBlocks * 2 * kChunks / kScoreThreads;
  auto copy_rows = [&](const int from, const int to) {
    int physical[kCopies];
#pragma unroll
    for (int r = 0; r < kCopies; ++r) {
      const int local = (threadIdx.x + r * kScoreThreads) / (2 * kChunks), b = first + local;
      physical[r] = b >= from && b < to && local < per_cta ? kv.block_table[b] : -1;
    }
#pragma unroll
    for (int r = 0; r < kCopies; ++r) {
      const int e = threadIdx.x + r * kScoreThreads, local = e / (2 * kChunks), side = e / kChunks % 2, c = e % kChunks;
      if (physical[r] >= 0)
        cp_async16(rows + (local * 2 + side) * kChunks + (c ^ (local & 7)),
                   (side ? kv.key_max : kv.key_min) + kv.summary_offset(physical[r], kvh) + c * 8);
    }
  };
  copy_rows(0, fixed_blocks);
  grid_dependency_wait();
  for (int z = (blockIdx.y * gridDim.x + blockIdx.x) * kScoreThreads + threadIdx.x; z < n_zero;
       z += gridDim.x * gridDim.y * kScoreThreads)
    zeroed[z] = 0u;
  if (first + per_cta > fixed_blocks) copy_rows(fixed_blocks, n);
  cp_async_commit();

  // A fragments: row g = lane / 4 (rows >= G zero), dims 16 k + 2 (lane % 4) (+1) and + 8 (+9);
  // side 0 multiplies the min row (q-), side 1 the max row (q+).
  unsigned qa[2][kSteps][2][2];  // [side][k-step][a0, a2][hi, lo]
  {
    const int g = lane >> 2, quad = lane & 3;
    const float* qr = q + size_t(kvh * G + (g < G ? g : 0)) * D;
#pragma unroll
    for (int k = 0; k < kSteps; ++k)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 x = g < G ? *reinterpret_cast<const float2*>(qr + 16 * k + 8 * h + 2 * quad) : make_float2(0.f, 0.f);
        const float x0 = x.x * scale_log2, x1 = x.y * scale_log2;
        split_half2(fminf(x0, 0.f), fminf(x1, 0.f), qa[0][k][h][0], qa[0][k][h][1]);
        split_half2(fmaxf(x0, 0.f), fmaxf(x1, 0.f), qa[1][k][h][0], qa[1][k][h][1]);
      }
  }
  const float log2_full = log2f(float(kv.block_size));
  cp_async_wait<0>();
  __syncthreads();

  // Warp w scores 8-block tiles w, w + kWarps, ...; lane holds query head lane / 4's bounds of
  // blocks 2 (lane % 4) (+1) of the tile, and its pair over them as it goes.
  const int g = lane >> 2, quad = lane & 3;
  float m = kNegBig, sum = 0.f;
  for (int tile = warp; tile * 8 < per_cta; tile += kWarps) {
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    const int t = 8 * tile + (lane & 7);  // the block whose row this lane gives ldmatrix
#pragma unroll
    for (int side = 0; side < 2; ++side)
#pragma unroll
      for (int k2 = 0; k2 < kSteps / 2; ++k2) {
        const int c = 4 * k2 + (lane >> 3);
        unsigned bf[4];  // k-steps 2 k2 and 2 k2 + 1 of blocks 8 tile ..
        ldmatrix_x4(bf, rows + (t * 2 + side) * kChunks + (c ^ (t & 7)));
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const unsigned (&a)[2][2] = qa[side][2 * k2 + h];
          mma_f16(acc, {a[0][0], 0u, a[1][0], 0u}, bf[2 * h], bf[2 * h + 1]);
          mma_f16(acc, {a[0][1], 0u, a[1][1], 0u}, bf[2 * h], bf[2 * h + 1]);
        }
      }
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int b = first + 8 * tile + 2 * quad + e;
      if (g < G && b < n) {
        upper_bounds[(size_t(kvh) * n + b) * G + g] = acc[e];
        const float term = acc[e] + (b == n - 1 ? log2f(float(kv.fill(b))) : log2_full), top = fmaxf(m, term);
        sum = sum * exp2_ftz(m - top) + exp2_ftz(term - top);
        m = top;
      }
    }
  }
  // The warp's pair per query head: the 4 lanes of a row hold other blocks.
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), sum2 = __shfl_xor_sync(0xffffffffu, sum, off);
    const float top = fmaxf(m, m2);
    sum = sum * exp2_ftz(m - top) + sum2 * exp2_ftz(m2 - top);
    m = top;
  }
  if (quad == 0 && g < G)
    warp_pairs[(size_t(kvh) * gridDim.x * kWarps + blockIdx.x * kWarps + warp) * G + g] = make_float2(m, sum);
  // Released only now: the next kernels' CTAs, launched early, would hold registers and shared
  // memory this kernel's CTAs need.
  grid_dependency_release();
}

// Counts `digit` in bins (global or shared memory) for the lanes where `counts` holds: lanes with
// the same digit add once, as the keys of one head often share their top bits.
__device__ __forceinline__ void count_digit(unsigned* bins, unsigned digit, bool counts) {
  const unsigned active = __ballot_sync(0xffffffffu, counts);
  if (counts) {
    const unsigned peers = __match_any_sync(active, digit);
    if (__ffs(peers) - 1 == int(threadIdx.x & 31)) atomicAdd(&bins[digit], unsigned(__popc(peers)));
  }
}

// t_g = ub_g + log2 fill of block i (ub: the head's bounds [n][G]): log2 of the bound on the
// block's softmax numerator for query head g.
template <int G>
__device__ __forceinline__ void load_terms(const float* __restrict__ ub, const PagedKvLayer& kv, int i, float (&t)[G]) {
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
  const float log2_fill = log2f(float(kv.fill(i)));
#pragma unroll
  for (int g = 0; g < G; ++g) t[g] += log2_fill;
}

// The selection's scratch in the caller's workspace (SelectWorkspace::carve).
struct SelectScratch {
  const float* upper_bounds;  // [n_kv][n][G] log2 units
  const float2* warp_pairs;   // [n_kv][n_pairs][G] the score kernel's (m, s)
  int n_pairs;
  unsigned* keys;             // [n_kv][n] ranking keys as ordered bits
  float* lse;                 // [n_kv][G] log2 of the normalisers
  unsigned* histogram;        // [n_kv][kRadixBins] the keys' top 12 bits (zeroed by the score kernel)
  unsigned* done;             // [n_kv] ranges finished (zeroed by the score kernel)
  unsigned* ready;            // [n_kv] ranges whose kept ids are written (zeroed by the score kernel)
  float* left_parts;          // [n_kv][kMaxRanges][G + 1] each range's left-out sums and count
};

// Keys for one range of kSelectThreads blocks of KV head blockIdx.y, one a thread: the normalisers
// from the score kernel's pairs (every range the same, in the same order), then the ranking key as
// the CPU selection ranks (prhs/selection.h): each query head's estimated share of the block,
// 2^(t_g - LSE_g) with t_g = ub_g + log2 fill, summed over the group; sink and recent blocks first
// (+inf). The keys' top 12 bits go into the head's histogram.
template <int G>
__global__ void __launch_bounds__(kSelectThreads)
    block_keys_kernel(const SelectScratch w, const PagedKvLayer kv, const int sink_blocks, const int recent_blocks) {
  __shared__ float max_scratch[kSelectThreads / 32][G];
  __shared__ float sum_scratch[kSelectThreads / 32][G];
  const int kvh = blockIdx.y, tid = threadIdx.x;
  const int n = kv.n_logical();
  const int i = blockIdx.x * kSelectThreads + tid;
  grid_dependency_wait();
  float t[G];
  load_terms<G>(w.upper_bounds + size_t(kvh) * n * G, kv, min(i, n - 1), t);

  const float2* pairs = w.warp_pairs + size_t(kvh) * w.n_pairs * G;
  float2 pair[kMaxPairs][G];
  float lse[G], sum[G];
#pragma unroll
  for (int p = 0; p < kMaxPairs; ++p)
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int at = tid + p * kSelectThreads;
      pair[p][g] = at < w.n_pairs ? pairs[size_t(at) * G + g] : make_float2(kNegBig, 0.f);
    }
#pragma unroll
  for (int g = 0; g < G; ++g) {
    lse[g] = kNegBig;
#pragma unroll
    for (int p = 0; p < kMaxPairs; ++p) lse[g] = fmaxf(lse[g], pair[p][g].x);
  }
  cta_reduce<kSelectThreads, G>(lse, max_scratch, [](float a, float b) { return fmaxf(a, b); });
#pragma unroll
  for (int g = 0; g < G; ++g) {
    sum[g] = 0.f;
#pragma unroll
    for (int p = 0; p < kMaxPairs; ++p) sum[g] += pair[p][g].y * exp2_ftz(pair[p][g].x - lse[g]);
  }
  cta_reduce<kSelectThreads, G>(sum, sum_scratch, [](float a, float b) { return a + b; });
  grid_dependency_release();
  float share = 0.f;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    lse[g] += log2f(sum[g]);
    share += exp2_ftz(t[g] - lse[g]);
    if (blockIdx.x == 0 && tid == g) w.lse[kvh * G + g] = lse[g];
  }
  const bool forced = i < sink_blocks || i >= n - recent_blocks;
  const unsigned key = ordered_bits(forced ? INFINITY : share);
  if (i < n) w.keys[size_t(kvh) * n + i] = key;
  count_digit(w.histogram + kvh * kRadixBins, key >> 20, i < n);
}

// Thread t of n_digits / kSelectThreads-digit counts (from the top) finds the digit holding the
// want-th largest key: s_prefix gets prefix | digit << shift, s_want the keys to take with that
// digit, s_count how many have it. counts[j] is digit n_digits - 1 - (t * per + j)'s count.
template <int kPer, typename Scan>
__device__ __forceinline__ void find_digit(const unsigned (&counts)[kPer], int per, int n_digits, int shift,
                                           unsigned prefix, unsigned want, typename Scan::TempStorage& storage,
                                           unsigned& s_prefix, unsigned& s_want, unsigned& s_count) {
  unsigned total = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) total += counts[j];
  int before;
  Scan(storage).ExclusiveSum(int(total), before);
  if (unsigned(before) < want && want <= unsigned(before) + total) {
    unsigned cum = unsigned(before);
    bool found = false;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      if (!found && cum + counts[j] >= want) {
        found = true;
        s_prefix = prefix | (unsigned(n_digits - 1 - (int(threadIdx.x) * per + j)) << shift);
        s_want = want - cum;
        s_count = counts[j];
      }
      cum += counts[j];
    }
  }
}

// One range of kSelectThreads blocks of KV head blockIdx.y: every range finds the same threshold
// (the k-th largest key; of equal keys the higher ids first, as the CPU selection ranks) from the
// head's histogram and, where the boundary digit
// is not taken whole, radix passes of 12 and 8 more bits over the head's keys with that digit;
// then writes its kept ids at their place in the ascending list, and sums its left-out blocks'
// 2^(t_g - LSE_g). The last range to finish adds the ranges' sums: U_g = 2^LSE_g * sum.
template <int G>
__global__ void __launch_bounds__(kSelectThreads)
    block_choose_kernel(const SelectScratch w, const PagedKvLayer kv, const int k, const int selected_stride,
                        int* __restrict__ selected, float* __restrict__ log2_left_out) {
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ unsigned bins[2][kRadixBins];  // a local pass's histogram; the other one is cleared meanwhile
  __shared__ unsigned s_prefix, s_want, s_count;
  __shared__ int count_scratch[kSelectThreads / 32][2];
  __shared__ float left_scratch[kSelectThreads / 32][G + 1];
  __shared__ bool s_last;

  const int kvh = blockIdx.y, range = blockIdx.x, tid = threadIdx.x;
  const int n = kv.n_logical();
  const int start = range * kSelectThreads, i = start + tid;
  for (int d = tid; d < kRadixBins; d += kSelectThreads) bins[0][d] = 0;  // ordered by the barriers below
  grid_dependency_wait();
  const unsigned* keys = w.keys + size_t(kvh) * n;
  float t[G];
  load_terms<G>(w.upper_bounds + size_t(kvh) * n * G, kv, min(i, n - 1), t);
  unsigned key[kMaxRanges];  // blocks tid + j * kSelectThreads: one of each range
#pragma unroll
  for (int j = 0; j < kMaxRanges; ++j) {
    const int b = tid + j * kSelectThreads;
    key[j] = b < n ? keys[b] : 0u;
  }

  // The first digit (12 bits) from the head's histogram: thread t counts digits 4095 - 8 t down.
  constexpr int kDigitsPerThread = kRadixBins / kSelectThreads;
  unsigned counts[kDigitsPerThread];
  {
    const uint4* h = reinterpret_cast<const uint4*>(w.histogram + kvh * kRadixBins + kRadixBins - kDigitsPerThread * (tid + 1));
#pragma unroll
    for (int v = 0; v < kDigitsPerThread / 4; ++v) {
      const uint4 x = h[v];
      counts[kDigitsPerThread - 1 - 4 * v] = x.x, counts[kDigitsPerThread - 2 - 4 * v] = x.y;
      counts[kDigitsPerThread - 3 - 4 * v] = x.z, counts[kDigitsPerThread - 4 - 4 * v] = x.w;
    }
  }
  find_digit<kDigitsPerThread, Scan>(counts, kDigitsPerThread, kRadixBins, 20, 0u, unsigned(k), scan_storage, s_prefix,
                                     s_want, s_count);
  __syncthreads();
  unsigned prefix = s_prefix, want = s_want, mask = 0xFFF00000u;

  // Then 12 and 8 more bits, over the keys that share the prefix, until a digit is taken whole.
#pragma unroll 1
  for (int pass = 0; pass < 2 && s_count != want; ++pass) {
    const int width = pass == 0 ? 12 : 8, shift = pass == 0 ? 8 : 0;
    const unsigned digit_mask = (1u << width) - 1;
    unsigned* hist = bins[pass];
    if (pass == 0)  // the other histogram's first use is the next pass, after this pass's barriers
      for (int d = tid; d < kRadixBins; d += kSelectThreads) bins[1][d] = 0;
#pragma unroll
    for (int j = 0; j < kMaxRanges; ++j) {
      if (j * kSelectThreads >= n) break;  // uniform: no thread has a block j
      count_digit(hist, (key[j] >> shift) & digit_mask, tid + j * kSelectThreads < n && (key[j] & mask) == prefix);
    }
    __syncthreads();
    const int n_digits = 1 << width;
    const int per = n_digits / kSelectThreads > 0 ? n_digits / kSelectThreads : 1;
#pragma unroll
    for (int j = 0; j < kDigitsPerThread; ++j) {
      const int d = n_digits - 1 - (tid * per + j);
      counts[j] = j < per && d >= 0 ? hist[d] : 0u;
    }
    find_digit<kDigitsPerThread, Scan>(counts, per, n_digits, shift, prefix, want, scan_storage, s_prefix, s_want,
                                       s_count);
    __syncthreads();
    prefix = s_prefix;
    want = s_want;
    mask |= digit_mask << shift;
  }
  const int skipped = int(s_count - want);  // keys equal to the threshold left out: the lowest ids

  // Kept: keys above the threshold under `mask`, and the last `want` equal to it in id order.
  // This range's place in the list: the greater and equal keys before it.
  int before[2] = {0, 0};  // greater, equal
#pragma unroll
  for (int j = 0; j < kMaxRanges; ++j) {
    const int b = tid + j * kSelectThreads;
    const unsigned u = key[j] & mask;
    before[0] += b < start && u > prefix;
    before[1] += b < start && u == prefix;
  }
  cta_reduce<kSelectThreads, 2>(before, count_scratch, [](int a, int b) { return a + b; });
  const unsigned mine = i < n ? keys[i] & mask : 0u;
  const bool greater = i < n && mine > prefix, equal = i < n && mine == prefix;
  int packed_before;  // both counts in 16-bit halves (n <= 8192)
  Scan(scan_storage).ExclusiveSum((int(equal) << 16) | int(greater), packed_before);
  const int equal_before = before[1] + (packed_before >> 16);
  const bool keep = greater || (equal && equal_before >= skipped);
  if (keep)
    selected[size_t(kvh) * selected_stride + before[0] + (packed_before & 0xFFFF) + max(0, equal_before - skipped)] = i;
  // The range's ids are out: the attention may start on the head's list once every range counted
  // (decode_attention's list_ready), and is released only after that.
  __syncthreads();
  if (tid == 0) atomic_add_acq_rel(&w.ready[kvh], 1u);  // releases the ids, written before the barrier

  // Left-out sums: 2^(t_g - LSE_g) <= 1 each. A term below 2^-126 is flushed to zero, so each
  // left-out block adds 2^-126 besides: U stays an upper bound.
  const bool left_out = i < n && !keep;
  float left[G + 1];
#pragma unroll
  for (int g = 0; g < G; ++g) left[g] = left_out ? exp2_ftz(t[g] - w.lse[kvh * G + g]) : 0.f;
  left[G] = left_out ? 1.f : 0.f;
  grid_dependency_release();  // thread 0 raised the count before it released
  cta_reduce<kSelectThreads, G + 1>(left, left_scratch, [](float a, float b) { return a + b; });
  float* parts = w.left_parts + size_t(kvh) * kMaxRanges * (G + 1);
  if (tid <= G) {
#pragma unroll
    for (int g = 0; g <= G; ++g)
      if (tid == g) parts[range * (G + 1) + g] = left[g];  // a constant index keeps left in registers
  }
  __syncthreads();
  // The count releases the range's parts and acquires those of the ranges counted before it.
  if (tid == 0) s_last = atomic_add_acq_rel(&w.done[kvh], 1u) == gridDim.x - 1;
  __syncthreads();
  if (!s_last || tid >= G) return;
  float total = 0.f, n_left = 0.f;
  for (int r = 0; r < int(gridDim.x); ++r) {
    total += __ldcg(parts + r * (G + 1) + tid);
    n_left += __ldcg(parts + r * (G + 1) + G);
  }
  // +1e-4 in log2 units (a factor 1.00007) covers float rounding of the terms and the sums, so U
  // stays an upper bound of the exact left-out sum for the computed bounds.
  log2_left_out[kvh * G + tid] =
      n_left > 0.f ? __ldcg(w.lse + kvh * G + tid) + log2f(total + n_left * 0x1p-126f) + 1e-4f : -INFINITY;
}

// The workspace, in floats: the bounds, the pairs (16-byte aligned), the keys, the normalisers,
// the histograms with the done and ready counts (zeroed together), the left-out parts.
struct SelectWorkspace {
  size_t pairs, keys, lse, histogram, done, ready, left_parts, total;
  SelectWorkspace(int n_kv, int group, int n) {
    auto align4 = [](size_t x) { return (x + 3) / 4 * 4; };
    const size_t max_pairs = size_t(n + kScoreMinBlocks - 1) / kScoreMinBlocks * (kScoreThreads / 32);
    pairs = align4(size_t(n_kv) * n * group);
    keys = pairs + size_t(n_kv) * max_pairs * group * 2;
    lse = keys + size_t(n_kv) * n;
    histogram = align4(lse + size_t(n_kv) * group);
    done = histogram + size_t(n_kv) * kRadixBins;
    ready = done + n_kv;
    left_parts = ready + n_kv;
    total = left_parts + size_t(n_kv) * kMaxRanges * (group + 1);
  }
  SelectScratch carve(float* base, int n_pairs) const {
    return SelectScratch{base, reinterpret_cast<const float2*>(base + pairs), n_pairs,
                         reinterpret_cast<unsigned*>(base + keys), base + lse,
                         reinterpret_cast<unsigned*>(base + histogram), reinterpret_cast<unsigned*>(base + done),
                         reinterpret_cast<unsigned*>(base + ready), base + left_parts};
  }
};

template <int D, int G>
void launch(const BlockSelectArgs& a, int k, cudaStream_t stream) {
  const int n = a.kv.n_logical();
  const int n_kv = a.kv.n_kv_heads;
  const SelectWorkspace layout(n_kv, G, n);
  // Blocks a score CTA: the most (fewest CTAs, all in one wave) unless the grid would leave SMs idle.
  static const int sms = multiprocessor_count();
  int per_cta = kScoreMaxBlocks;
  while (per_cta > kScoreMinBlocks && (n + per_cta - 1) / per_cta * n_kv < sms) per_cta /= 2;
  const int score_ctas = (n + per_cta - 1) / per_cta;
  static const bool score_configured = [] {  // rows of up to 128 blocks: 64 KB at head dim 128
    RL_CUDA_CHECK(cudaFuncSetAttribute(block_score_kernel<D, G>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(kScoreMaxBlocks * 2 * D * sizeof(__half))));
    return true;
  }();
  (void)score_configured;
  const SelectScratch w = layout.carve(a.workspace, score_ctas * (kScoreThreads / 32));  // a pair a warp
  launch_chained("block_score_kernel", block_score_kernel<D, G>, dim3(score_ctas, n_kv), dim3(kScoreThreads),
                 size_t(per_cta) * 2 * D * sizeof(__half), stream, a.q, a.kv, a.scale * 1.4426950408889634f, per_cta,
                 std::min(a.fixed_blocks, n), a.workspace, reinterpret_cast<float2*>(a.workspace + layout.pairs),
                 reinterpret_cast<unsigned*>(a.workspace + layout.histogram), int(layout.left_parts - layout.histogram));
  const dim3 ranges((n + kSelectThreads - 1) / kSelectThreads, n_kv);
  launch_chained("block_keys_kernel", block_keys_kernel<G>, ranges, dim3(kSelectThreads), 0, stream, w, a.kv,
                 a.sink_blocks, a.recent_blocks);
  launch_chained("block_choose_kernel", block_choose_kernel<G>, ranges, dim3(kSelectThreads), 0, stream, w, a.kv, k,
                 a.budget, a.selected, a.log2_left_out);
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
  return SelectWorkspace(n_kv_heads, group, n_logical_blocks).total;
}

ListReady block_select_list_ready(const BlockSelectArgs& a) {
  const int n = a.kv.n_logical(), n_kv = a.kv.n_kv_heads;
  const SelectWorkspace layout(n_kv, a.n_heads / n_kv, n);
  return ListReady{reinterpret_cast<const unsigned*>(a.workspace + layout.ready),
                   unsigned((n + kSelectThreads - 1) / kSelectThreads)};
}

void block_select(const BlockSelectArgs& a, cudaStream_t stream) {
  const int n_kv = a.kv.n_kv_heads;
  if (n_kv <= 0 || a.n_heads % n_kv != 0) throw std::runtime_error("block_select: n_heads must be a multiple of n_kv_heads");
  if (!a.kv.key_min || !a.kv.key_max) throw std::runtime_error("block_select: block summaries missing");
  if (a.budget <= 0) throw std::runtime_error("block_select: budget must be positive");
  if (a.fixed_blocks < 0) throw std::runtime_error("block_select: fixed_blocks must not be negative");
  if (a.kv.n_logical() > kMaxBlocks)
    throw std::runtime_error("block_select: at most " + std::to_string(kMaxBlocks) + " blocks per sequence");
  const int k = std::min(a.budget, a.kv.n_logical());
  const int group = a.n_heads / n_kv;
  if (a.kv.head_dim == 64) dispatch_group<64>(a, group, k, stream);
  else if (a.kv.head_dim == 128) dispatch_group<128>(a, group, k, stream);
  else throw std::runtime_error("block_select: no kernel for head_dim " + std::to_string(a.kv.head_dim));
}

}  // namespace rl::cuda
