#include "block_select.cuh"

#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;  // one radix bin a thread
constexpr int kWarps = kThreads / 32;
constexpr int kScoreUnroll = 8;   // summary rows a lane group has in flight
constexpr int kMaxBlocks = 8192;  // blocks per sequence (256K positions at 32): ids and counts fit 16 bits
constexpr int kMaxCluster = 16;

// Blocks a CTA owns: a multiple of 4, so keys copy 16 bytes at a time.
__host__ __device__ inline int blocks_per_cta(int n_blocks, int ctas) { return ((n_blocks + ctas - 1) / ctas + 3) / 4 * 4; }

// The cluster of CTAs that selects for one KV head; before Hopper, the CTA alone.
__device__ __forceinline__ int cluster_rank() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return int(cg::this_cluster().block_rank());
#else
  return 0;
#endif
}
__device__ __forceinline__ int cluster_ctas() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return int(cg::this_cluster().num_blocks());
#else
  return 1;
#endif
}
// Barrier over the cluster; shared memory written before it is visible to every CTA after it.
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cg::this_cluster().sync();
#else
  __syncthreads();
#endif
}
// `p` (in this CTA's shared memory) at the same place in CTA `rank`'s.
template <typename T>
__device__ __forceinline__ T* in_cta(T* p, int rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return cg::this_cluster().map_shared_rank(p, rank);
#else
  (void)rank;
  return p;
#endif
}

// Float -> unsigned with the same order (larger float, larger unsigned).
__device__ __forceinline__ unsigned ordered_bits(float f) {
  const unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// CTA-wide max / sum of G values a thread; every thread gets the result. scratch: [kWarps][G].
template <int G>
__device__ void cta_max(float (&v)[G], float (*scratch)[G]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    v[g] = warp_max(v[g]);
    if (lane == 0) scratch[warp][g] = v[g];
  }
  __syncthreads();
#pragma unroll
  for (int g = 0; g < G; ++g) {
    v[g] = scratch[0][g];
    for (int w = 1; w < kWarps; ++w) v[g] = fmaxf(v[g], scratch[w][g]);
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
    for (int w = 0; w < kWarps; ++w) v[g] += scratch[w][g];
  }
  __syncthreads();
}

// Merges (max, sum of 2^(x - max)) parts of a log2-sum-exp2; parts with nothing in them are
// (-inf, 0). Returns (max, sum) of the whole.
__device__ __forceinline__ float2 merge_lse_parts(const float2* parts, int n_parts, int stride) {
  float m = -INFINITY;
  for (int r = 0; r < n_parts; ++r) m = fmaxf(m, parts[r * stride].x);
  float s = 0.f;
  if (m > -INFINITY)
    for (int r = 0; r < n_parts; ++r)
      if (parts[r * stride].y > 0.f) s += parts[r * stride].y * exp2f(parts[r * stride].x - m);
  return make_float2(m, s);
}

// Scores this CTA's blocks [first, first + count) of KV head kvh into lm[i][g] = ub_g + log2 fill:
// D / 8 lanes share one block's summary row, each holding 8 dims of every query of the group.
template <int D, int G>
__device__ void score_blocks(const float* __restrict__ q, const PagedKvLayer& kv, int kvh, float scale_log2,
                             int first, int count, float* __restrict__ lm) {
  constexpr int kChunks = D / 8;
  constexpr int kPerWarp = 32 / kChunks;  // blocks a warp scores per step
  constexpr int kPerPass = kWarps * kPerWarp * kScoreUnroll;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int chunk = lane % kChunks;

  float qr[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int j = 0; j < 8; ++j) qr[g][j] = q[size_t(kvh * G + g) * D + chunk * 8 + j] * scale_log2;

  for (int pass = 0; pass < count; pass += kPerPass) {
    const int base = pass + warp * kPerWarp * kScoreUnroll + lane / kChunks;
    uint4 lo_raw[kScoreUnroll], hi_raw[kScoreUnroll];
#pragma unroll
    for (int u = 0; u < kScoreUnroll; ++u) {
      const int i = base + u * kPerWarp;
      lo_raw[u] = hi_raw[u] = make_uint4(0, 0, 0, 0);
      if (i < count) {
        const size_t off = kv.summary_offset(kv.block_table[first + i], kvh) + chunk * 8;
        lo_raw[u] = __ldg(reinterpret_cast<const uint4*>(kv.key_min + off));
        hi_raw[u] = __ldg(reinterpret_cast<const uint4*>(kv.key_max + off));
      }
    }
#pragma unroll
    for (int u = 0; u < kScoreUnroll; ++u) {
      const int i = base + u * kPerWarp;
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
      if (i < count && chunk == 0) {
        const float log2_fill = log2f(float(kv.fill(first + i)));
#pragma unroll
        for (int g = 0; g < G; ++g) lm[i * G + g] = ub[g] + log2_fill;
      }
    }
  }
}

// Grid (cluster size, KV heads), clusters along x: the cluster of KV head blockIdx.y keeps the k
// largest ranking keys (ties: lowest ids), writes them ascending and bounds the left-out blocks'
// softmax numerators per query head. CTA `rank` owns blocks [rank * per, +per) and scores them;
// the cluster then meets three times: to merge the normalisers, to share every key (each CTA
// finds the threshold on its own copy, as the same computation in every CTA), and to merge the
// left-out bound in rank 0. Each merge runs over the ranks in order, so all CTAs agree.
template <int D, int G>
__global__ void __launch_bounds__(kThreads)
    block_select_kernel(const float* __restrict__ q, const PagedKvLayer kv, const float scale_log2, const int k,
                        const int sink_blocks, const int recent_blocks, const int selected_stride,
                        int* __restrict__ selected, float* __restrict__ log2_left_out) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ unsigned first_hist[256];  // this CTA's histogram of the first radix digit (its peers read it)
  __shared__ unsigned bins[256];        // the histogram of the pass at hand, over every key
  __shared__ float2 lse_part[G];        // this CTA's (max, sum) of lm per head
  __shared__ float2 left_out_part[kMaxCluster][G];  // rank 0's: every CTA's (max, sum) over its left-out blocks
  __shared__ float lse[G];
  __shared__ unsigned s_prefix, s_want, s_count;
  __shared__ float scratch[kWarps][G];
  extern __shared__ __align__(16) unsigned char dynamic_smem[];

  const int kvh = blockIdx.y;
  const int rank = cluster_rank(), n_ranks = cluster_ctas();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int n = kv.n_logical();
  const int per = blocks_per_cta(n, n_ranks);
  const int first = min(rank * per, n), count = min(per, n - first);
  const int n_keys = n_ranks * per;  // every CTA's keys side by side: key j is block j's (0 past n)
  unsigned* all_keys = reinterpret_cast<unsigned*>(dynamic_smem);  // [n_keys]
  unsigned* key = all_keys + n_keys;                                 // [per] this CTA's, for its peers
  float* lm = reinterpret_cast<float*>(key + per);                   // [per][G] ub + log2 fill, log2 units
  bool* left_out = reinterpret_cast<bool*>(lm + size_t(per) * G);    // [per]
  grid_dependency_wait();

  score_blocks<D, G>(q, kv, kvh, scale_log2, first, count, lm);
  __syncthreads();

  // Each head's log2-sum-exp2 over every block of the KV head: this CTA's part, then the cluster's.
  float m[G], s[G];
#pragma unroll
  for (int g = 0; g < G; ++g) m[g] = -INFINITY, s[g] = 0.f;
  for (int i = tid; i < count; i += kThreads)
#pragma unroll
    for (int g = 0; g < G; ++g) m[g] = fmaxf(m[g], lm[i * G + g]);
  cta_max<G>(m, scratch);
  for (int i = tid; i < count; i += kThreads)
#pragma unroll
    for (int g = 0; g < G; ++g) s[g] += exp2f(lm[i * G + g] - m[g]);
  cta_sum<G>(s, scratch);
#pragma unroll
  for (int g = 0; g < G; ++g)
    if (tid == g) lse_part[g] = make_float2(m[g], s[g]);
  cluster_sync();
  if (tid < G) {
    float2 parts[kMaxCluster];
    for (int r = 0; r < n_ranks; ++r) parts[r] = in_cta(lse_part, r)[tid];
    const float2 whole = merge_lse_parts(parts, n_ranks, 1);
    lse[tid] = whole.x + log2f(whole.y);
  }
  first_hist[tid] = 0;
  __syncthreads();

  // Ranking key: each head's estimated share of the block, summed over the group; sink and recent
  // blocks rank first (+inf). Keys are order-preserving bits with the top bit set (shares are >= 0),
  // so the padding past n (0) ranks below every block.
  for (int i = tid; i < per; i += kThreads) {
    unsigned u = 0;
    if (i < count) {
      float share = 0.f;
#pragma unroll
      for (int g = 0; g < G; ++g) share += exp2f(lm[i * G + g] - lse[g]);
      const int b = first + i;
      const bool forced = b < sink_blocks || b >= n - recent_blocks;
      u = ordered_bits(forced ? INFINITY : share);
    }
    key[i] = u;
  }

  // Radix select, 8 bits a pass below the top bit (the float's exponent first): afterwards the k
  // largest keys are those whose bits under `mask` exceed `prefix`, and the first `want` (in id
  // order) equal to it. The first pass's histogram is summed over the cluster's; the later passes
  // run on this CTA's copy of every key. A pass whose boundary bin is taken whole ends the search.
  unsigned prefix = 0x80000000u, want = unsigned(k), mask = 0x80000000u;
  auto add_to_histogram = [&](unsigned* hist, const unsigned* keys, int n_in, int shift) {
    const int n_round = (n_in + 31) / 32 * 32;  // whole warps call match_any
    for (int i = tid; i < n_round; i += kThreads) {
      const unsigned u = i < n_in ? keys[i] : 0u;
      const bool match = (u & mask) == prefix;
      const unsigned digit = (u >> shift) & 255u;
      const unsigned active = __ballot_sync(0xffffffffu, match);
      if (match) {
        // Lanes with the same digit add once: keys of one head often share their top bits.
        const unsigned peers = __match_any_sync(active, digit);
        if (__ffs(peers) - 1 == lane) atomicAdd(&hist[digit], unsigned(__popc(peers)));
      }
    }
  };
  // Finds the bin holding the want-th largest key; returns true when that bin is taken whole.
  auto choose_bin = [&](int shift) {
    if (warp == 0) {
      // Lane L holds digits 255 - 8L down to 248 - 8L; scan counts from the largest digit.
      unsigned c[8], sum = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) sum += (c[j] = bins[255 - 8 * lane - j]);
      unsigned inclusive = sum;
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const unsigned y = __shfl_up_sync(0xffffffffu, inclusive, off);
        if (lane >= off) inclusive += y;
      }
      const unsigned before = inclusive - sum;
      if (before < want && want <= inclusive) {
        unsigned cum = before;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          if (cum + c[j] >= want) {
            s_prefix = prefix | (unsigned(255 - 8 * lane - j) << shift);
            s_want = want - cum;
            s_count = c[j];
            break;
          }
          cum += c[j];
        }
      }
    }
    __syncthreads();
    prefix = s_prefix;
    want = s_want;
    mask |= 255u << shift;
    return s_count == want;
  };

  add_to_histogram(first_hist, key, count, 23);
  cluster_sync();
  {
    unsigned total = 0;
    for (int r = 0; r < n_ranks; ++r) total += in_cta(first_hist, r)[tid];
    bins[tid] = total;
    const int quads = per / 4;  // per is a multiple of 4: 16-byte copies
    for (int j = tid; j < n_keys / 4; j += kThreads)
      reinterpret_cast<uint4*>(all_keys)[j] = in_cta(reinterpret_cast<uint4*>(key), j / quads)[j % quads];
  }
  __syncthreads();
  bool done = choose_bin(23);
  const int later_shifts[3] = {15, 7, 0};  // the last digit's top bit is fixed already
  for (int pass = 0; pass < 3 && !done; ++pass) {
    bins[tid] = 0;
    __syncthreads();
    add_to_histogram(bins, all_keys, n_keys, later_shifts[pass]);
    __syncthreads();
    done = choose_bin(later_shifts[pass]);
  }

  // Compaction in id order over every key (thread t: ids [t * chunk, +chunk)); each CTA writes the
  // kept ids of its own blocks and flags the left-out ones.
  const int chunk = (n_keys + kThreads - 1) / kThreads;
  const int lo = min(tid * chunk, n_keys), hi = min(lo + chunk, n_keys);
  int greater = 0, equal = 0;
  for (int i = lo; i < hi; ++i) {
    const unsigned u = all_keys[i] & mask;
    greater += u > prefix;
    equal += u == prefix;
  }
  // One scan of both counts packed in 16-bit halves (n_keys < 65536): ties are taken in id order.
  int packed_before;
  Scan(scan_storage).ExclusiveSum((equal << 16) | greater, packed_before);
  if (hi > first && lo < first + count) {
    const int equal_before = packed_before >> 16;
    const int take_equal = max(0, min(equal, int(want) - equal_before));
    int offset = (packed_before & 0xFFFF) + min(equal_before, int(want));
    int* out = selected + size_t(kvh) * selected_stride;
    int taken_equal = 0;
    for (int i = lo; i < hi; ++i) {
      const unsigned u = all_keys[i] & mask;
      const bool keep = u > prefix || (u == prefix && taken_equal++ < take_equal);
      if (i >= first && i < first + count) {
        if (keep) out[offset] = i;
        left_out[i - first] = !keep;
      }
      offset += keep;
    }
  }
  grid_dependency_release();
  __syncthreads();

  // Left-out bound per query head: U_g = sum over left-out blocks of fill * 2^ub_g, each CTA's part
  // as (max, sum of 2^(term - max)), so no term overflows and only terms below 2^-126 of the
  // largest can vanish; the parts go to rank 0, which merges them.
#pragma unroll
  for (int g = 0; g < G; ++g) m[g] = -INFINITY, s[g] = 0.f;
  for (int i = tid; i < count; i += kThreads)
    if (left_out[i])
#pragma unroll
      for (int g = 0; g < G; ++g) m[g] = fmaxf(m[g], lm[i * G + g]);
  cta_max<G>(m, scratch);
  for (int i = tid; i < count; i += kThreads)
    if (left_out[i])
#pragma unroll
      for (int g = 0; g < G; ++g) s[g] += exp2f(lm[i * G + g] - m[g]);  // m[g] is finite here
  cta_sum<G>(s, scratch);
#pragma unroll
  for (int g = 0; g < G; ++g)
    if (tid == g) in_cta(&left_out_part[rank][g], 0)[0] = make_float2(m[g], s[g]);
  cluster_sync();  // after it no CTA reads another's shared memory, so each may exit
  if (rank == 0 && tid < G) {
    const float2 whole = merge_lse_parts(&left_out_part[0][tid], n_ranks, G);
    // +1e-4 in log2 units (a factor 1.00007) covers float rounding of the sums, so U stays an
    // upper bound of the exact left-out sum for the computed scores.
    log2_left_out[kvh * G + tid] = whole.y > 0.f ? whole.x + log2f(whole.y) + 1e-4f : -INFINITY;
  }
}

size_t dynamic_smem_bytes(int n_blocks, int ctas, int group) {
  const int per = blocks_per_cta(n_blocks, ctas);
  return size_t(ctas) * per * sizeof(unsigned) + size_t(per) * (sizeof(unsigned) + group * sizeof(float) + 1);
}

// The largest cluster `kernel` may use: clusters need Hopper, and 16 CTAs (a non-portable size)
// a GPU that can place one.
int cluster_limit(void (*kernel)(const float*, PagedKvLayer, float, int, int, int, int, int*, float*), int group) {
  int device = 0, major = 0;
  RL_CUDA_CHECK(cudaGetDevice(&device));
  RL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major < 9) return 1;
  RL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(kMaxCluster, 1);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = dynamic_smem_bytes(kMaxBlocks, kMaxCluster, group);
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim = {unsigned(kMaxCluster), 1, 1};
  config.attrs = &attribute;
  config.numAttrs = 1;
  int clusters = 0;
  RL_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, kernel, &config));
  return clusters > 0 ? kMaxCluster : kMaxCluster / 2;
}

// CTAs a KV head's cluster gets: a power of two, enough to spread the heads over the GPU, never
// fewer than 32 blocks a CTA.
int cluster_size(int limit, int n_blocks, int n_kv) {
  static const int sms = multiprocessor_count();
  const int wanted = std::min({limit, std::max(1, sms / n_kv), std::max(1, n_blocks / 32)});
  int c = 1;
  while (c * 2 <= wanted) c *= 2;
  return c;
}

template <int D, int G>
void launch(const BlockSelectArgs& a, int k, cudaStream_t stream) {
  auto kernel = block_select_kernel<D, G>;
  const int n = a.kv.n_logical();
  const int n_kv = a.kv.n_kv_heads;
  static const int limit = cluster_limit(kernel, G);
  const int cluster = cluster_size(limit, n, n_kv);
  const size_t smem = dynamic_smem_bytes(n, cluster, G);
  static size_t smem_allowed = 48 * 1024;
  if (smem > smem_allowed) {
    int device = 0, optin = 0;
    RL_CUDA_CHECK(cudaGetDevice(&device));
    RL_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (smem + 8 * 1024 > size_t(optin))  // the kernel's static shared memory is under 8 KB
      throw std::runtime_error("block_select: " + std::to_string(n) + " blocks need a GPU with thread block clusters");
    RL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    smem_allowed = smem;
  }
  launch_chained_clusters("block_select_kernel", kernel, dim3(cluster, n_kv), dim3(kThreads), smem, cluster, stream,
                          a.q, a.kv, a.scale * 1.4426950408889634f, k, a.sink_blocks, a.recent_blocks, a.budget,
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

void block_select(const BlockSelectArgs& a, cudaStream_t stream) {
  const int n_kv = a.kv.n_kv_heads;
  if (n_kv <= 0 || a.n_heads % n_kv != 0) throw std::runtime_error("block_select: n_heads must be a multiple of n_kv_heads");
  if (!a.kv.key_min || !a.kv.key_max) throw std::runtime_error("block_select: block summaries missing");
  if (a.budget <= 0) throw std::runtime_error("block_select: budget must be positive");
  if (a.kv.n_logical() > kMaxBlocks)
    throw std::runtime_error("block_select: at most " + std::to_string(kMaxBlocks) + " blocks per sequence");
  const int k = std::min(a.budget, a.kv.n_logical());
  const int group = a.n_heads / n_kv;
  if (a.kv.head_dim == 64) dispatch_group<64>(a, group, k, stream);
  else if (a.kv.head_dim == 128) dispatch_group<128>(a, group, k, stream);
  else throw std::runtime_error("block_select: no kernel for head_dim " + std::to_string(a.kv.head_dim));
}

}  // namespace rl::cuda
