#include "block_bounds.cuh"

#include <stdexcept>

#include "device_util.cuh"
#include "switches.h"

namespace rl::cuda {
namespace {

// The host's std::max(a, b), operation for operation.
__device__ __forceinline__ double host_max(double a, double b) { return a < b ? b : a; }
__device__ __forceinline__ float host_maxf(float a, float b) { return a < b ? b : a; }

// bound_slack (prhs/block_bounds.cc): 1e-9 · Σ_i |q_i|·max(|lo_i|, |hi_i|) + 1e-12.
// The slack of a bound whose reach Σ_i |q_i|·max(|lo_i|, |hi_i|) is `reach`.
__device__ __forceinline__ double slack_of(double reach) { return __dadd_rn(__dmul_rn(1e-9, reach), 1e-12); }
__device__ double bound_slack(const double* __restrict__ q, const float* __restrict__ lo, const float* __restrict__ hi, int hd) {
  double s = 0;
  for (int i = 0; i < hd; i++) s = __dadd_rn(s, __dmul_rn(fabs(q[i]), double(host_maxf(fabsf(lo[i]), fabsf(hi[i])))));
  return slack_of(s);
}

__device__ __forceinline__ int fill_of(const BlockBoundsKv& kv, int b) {
  const int rest = kv.context - b * kv.block_size;
  return rest < kv.block_size ? rest : kv.block_size;
}

// One thread per (block, query head): the block's summary read once per head of the group.
__global__ void minmax_kernel(const BlockBoundsKv kv, const int kv_head, const double* __restrict__ q, const int group,
                              const char* __restrict__ mask, const int n_blocks, const double* __restrict__ log_fill,
                              double* __restrict__ table) {
  grid_dependency_wait();
  const int item = blockIdx.x * blockDim.x + threadIdx.x, b = item / group, g = item % group;
  if (b >= n_blocks || !mask[b]) return;
  const int hd = kv.head_dim;
  const float* lo = kv.summary + (size_t(kv.block_table[b]) * kv.n_kv_heads + kv_head) * 2 * hd;
  const float* hi = lo + hd;
  const double* qg = q + size_t(g) * hd;
  double ub = 0;
  for (int i = 0; i < hd; i++) ub = __dadd_rn(ub, host_max(__dmul_rn(qg[i], double(lo[i])), __dmul_rn(qg[i], double(hi[i]))));
  table[size_t(g) * n_blocks + b] = __dadd_rn(__dadd_rn(log_fill[fill_of(kv, b)], ub), bound_slack(qg, lo, hi, hd));
}

// The same bounds with the terms made by many threads and only the chains left to one: a CTA takes
// kChainItems consecutive (block, query head) items. In chunks of kChainDims dimensions, four warps
// make both terms of every (item, dimension) into shared memory, and the fifth warp, a lane per item,
// adds them to the item's two chains in the host's order, while the four make the next chunk's.
// Bit-equal to minmax_kernel: the same terms, added in the same order.
constexpr int kChainItems = 32, kChainDims = 32, kTermWarps = 4;

__global__ void __launch_bounds__((kTermWarps + 1) * 32) minmax_chunks_kernel(const BlockBoundsKv kv, const int kv_head,
                                                                               const double* __restrict__ q, const int group,
                                                                               const char* __restrict__ mask, const int n_blocks,
                                                                               const double* __restrict__ log_fill, double* __restrict__ table) {
  grid_dependency_wait();
  __shared__ double terms[2][2][kChainDims][kChainItems];  // [buffer][ub term, slack term][dimension][item]: a warp's lanes, consecutive items
  const int hd = kv.head_dim, first = blockIdx.x * kChainItems;
  const bool chains = threadIdx.x < 32;  // warp 0: a lane per item
  const int item = first + threadIdx.x, b = item / group;
  const bool mine = chains && b < n_blocks && mask[b];
  // A term warp's lane makes its item's terms for dimensions warp - 1, warp + 3, ... of each chunk.
  const int lane = threadIdx.x & 31, term_item = first + lane, term_block = term_item / group;
  const bool terms_here = !chains && term_block < n_blocks && mask[term_block];
  const float* lo = kv.summary + (size_t(terms_here ? kv.block_table[term_block] : 0) * kv.n_kv_heads + kv_head) * 2 * hd;
  const double* qt = q + size_t(term_item % group) * hd;
  double ub = 0, reach = 0;
  for (int d0 = 0, k = 0; d0 < hd; d0 += kChainDims, k ^= 1) {
    const int dims = min(kChainDims, hd - d0);
    if (terms_here) {
#pragma unroll
      for (int d = (threadIdx.x >> 5) - 1; d < kChainDims; d += kTermWarps) {
        if (d >= dims) break;
        const float l = lo[d0 + d], h = lo[hd + d0 + d];
        const double qi = qt[d0 + d];
        terms[k][0][d][lane] = host_max(__dmul_rn(qi, double(l)), __dmul_rn(qi, double(h)));
        terms[k][1][d][lane] = __dmul_rn(fabs(qi), double(host_maxf(fabsf(l), fabsf(h))));
      }
    }
    __syncthreads();  // chunk k's terms are made; the chains are done with the buffer the next chunk fills
    if (mine) {
      for (int d = 0; d < dims; d++) {
        ub = __dadd_rn(ub, terms[k][0][d][threadIdx.x]);
        reach = __dadd_rn(reach, terms[k][1][d][threadIdx.x]);
      }
    }
  }
  if (mine) table[size_t(item % group) * n_blocks + b] = __dadd_rn(__dadd_rn(log_fill[fill_of(kv, b)], ub), slack_of(reach));
}

// A copy of a block's codes by the threads first, first + stride, ..., by 16 or 4 bytes where the
// length and the ends allow.
__device__ __forceinline__ void copy_codes(const unsigned char* __restrict__ from, unsigned char* __restrict__ to, int n, int first, int stride) {
  if (n % 16 == 0 && reinterpret_cast<size_t>(from) % 16 == 0 && reinterpret_cast<size_t>(to) % 16 == 0) {  // 16 bytes a load, 8 in flight
    const uint4* f = reinterpret_cast<const uint4*>(from);
    uint4* t = reinterpret_cast<uint4*>(to);
#pragma unroll 8
    for (int i = first; i < n / 16; i += stride) t[i] = f[i];
  } else if (n % 4 == 0) {
    const unsigned* f = reinterpret_cast<const unsigned*>(from);
    unsigned* t = reinterpret_cast<unsigned*>(to);
    for (int i = first; i < n / 4; i += stride) t[i] = f[i];
  } else {
    for (int i = first; i < n; i += stride) to[i] = from[i];
  }
}

// A block's sketch, the threads first, first + stride, ... taking its dimensions: codes [hd][bs]
// (dimension-major), err [hd] and the grid's step [hd]. From the cache where it was kept with these
// bits (`kept`), else build_sketch's codes and largest grid error made from the keys: the same bits
// either way. The caller syncs these threads before reading them or calling keep_sketch.
__device__ void make_sketch(const SketchCache& cache, size_t at, bool kept, const float* __restrict__ lo, const float* __restrict__ hi,
                            const float* __restrict__ keys, int hd, int bs, int fill, int levels, int first, int stride,
                            unsigned char* codes, float* err, double* step) {
  if (kept) {
    copy_codes(cache.codes + at * size_t(hd) * bs, codes, hd * bs, first, stride);
#pragma unroll 4
    for (int i = first; i < hd; i += stride) {
      step[i] = __ddiv_rn(__dsub_rn(double(hi[i]), double(lo[i])), double(levels - 1));
      err[i] = cache.err[at * hd + i];
    }
    return;
  }
  // build_sketch: the code of every key element and, per dimension, the largest grid error.
  for (int i = first; i < hd; i += stride) {
    const double l = lo[i], s = __ddiv_rn(__dsub_rn(double(hi[i]), l), double(levels - 1));
    double e = 0;
    for (int j = 0; j < fill; j++) {
      const double k = keys[size_t(j) * hd + i];
      int c = 0;
      if (s > 0) {
        const long r = lround(__ddiv_rn(__dsub_rn(k, l), s));
        c = int(r) < 0 ? 0 : (int(r) > levels - 1 ? levels - 1 : int(r));
      }
      codes[size_t(i) * bs + j] = static_cast<unsigned char>(c);
      e = host_max(e, fabs(__dsub_rn(k, __dadd_rn(l, __dmul_rn(s, double(c))))));
    }
    float ef = __double2float_rn(e);
    if (double(ef) < e) ef = nextafterf(ef, 1e30f);
    err[i] = ef;
    step[i] = s;
  }
}

// A full block's sketch just built (make_sketch, its threads synced) kept in the cache. Only later
// launches read it (every CTA or warp has a block of its own), so no fence is needed.
__device__ void keep_sketch(const SketchCache& cache, size_t at, int bits, int hd, int bs, const unsigned char* codes, const float* err,
                            int first, int stride) {
  copy_codes(codes, cache.codes + at * size_t(hd) * bs, hd * bs, first, stride);
  for (int i = first; i < hd; i += stride) cache.err[at * hd + i] = err[i];
  if (first == 0) cache.valid[at] = static_cast<unsigned char>(bits);
}

constexpr int kSketchThreads = 128;
constexpr int kSketchHeads = 8;  // query heads a thread sums for at once (registers)

// One CTA per block. Shared: step [hd], w [group][hd], base [group], part [warps][group][block_size],
// scratch [warps][kSketchHeads][2] (double); err [hd] (float); codes [head_dim][block_size] (dimension-major: a warp's
// lanes read consecutive positions). The sums are split over the CTA's threads (the host sums in one
// chain: the bound differs from the host's by a few ulps, well inside its slack).
__global__ void __launch_bounds__(kSketchThreads) sketch_kernel(const BlockBoundsKv kv, const SketchCache cache, const int kv_head,
                                                                const double* __restrict__ q, const int group, const char* __restrict__ mask,
                                                                const int n_blocks, const int bits, double* __restrict__ table) {
  grid_dependency_wait();
  const int b = blockIdx.x;
  if (!mask[b]) return;
  const int hd = kv.head_dim, bs = kv.block_size, fill = fill_of(kv, b), levels = 1 << bits, warps = blockDim.x >> 5;
  extern __shared__ double smem[];
  double* step = smem;                       // [hd]
  double* w = step + hd;                     // [group][hd]
  double* base = w + size_t(group) * hd;     // [group]
  double* part = base + group;               // [warps][group][bs]
  double* scratch = part + size_t(warps) * group * bs;  // [warps][kSketchHeads][2]
  float* err = reinterpret_cast<float*>(scratch + warps * kSketchHeads * 2);  // [hd]
  unsigned char* codes = reinterpret_cast<unsigned char*>(err + hd);  // [hd][bs]
  const size_t at = size_t(kv.block_table[b]) * kv.n_kv_heads + kv_head;
  const float* lo = kv.summary + at * 2 * hd;
  const float* hi = lo + hd;
  const float* keys = kv.keys + at * bs * hd;
  // A full block's sketch is kept: taken from the cache when there, else built and kept.
  const bool keep = cache.valid && fill == bs;
  const bool kept = keep && cache.valid[at] == bits;

  make_sketch(cache, at, kept, lo, hi, keys, hd, bs, fill, levels, threadIdx.x, blockDim.x, codes, err, step);
  __syncthreads();
  if (keep && !kept) keep_sketch(cache, at, bits, hd, bs, codes, err, threadIdx.x, blockDim.x);
  // sketch_log_bound: base_g = slack_g + Σ_i (q_i·lo_i + |q_i|·err_i), w_gi = q_i·step_i, with
  // slack_g = 1e-9 · Σ_i |q_i|·max(|lo_i|, |hi_i|) + 1e-12 (bound_slack).
  for (int gi = threadIdx.x; gi < group * hd; gi += blockDim.x) w[gi] = __dmul_rn(q[gi], step[gi % hd]);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int g0 = 0; g0 < group; g0 += kSketchHeads) {  // per thread its dimensions' share, then the CTA's sum
    const int heads = min(kSketchHeads, group - g0);
    double terms[kSketchHeads], reach[kSketchHeads];
    for (int h = 0; h < kSketchHeads; h++) terms[h] = reach[h] = 0;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
      const double l = lo[i], e = err[i], m = host_maxf(fabsf(lo[i]), fabsf(hi[i]));
#pragma unroll
      for (int h = 0; h < kSketchHeads; h++) {
        if (h >= heads) continue;
        const double qi = q[size_t(g0 + h) * hd + i];
        terms[h] += __dadd_rn(__dmul_rn(qi, l), __dmul_rn(fabs(qi), e));
        reach[h] += __dmul_rn(fabs(qi), m);
      }
    }
#pragma unroll
    for (int h = 0; h < kSketchHeads; h++) {
      for (int off = 16; off > 0; off >>= 1) {
        terms[h] += __shfl_xor_sync(0xffffffffu, terms[h], off);
        reach[h] += __shfl_xor_sync(0xffffffffu, reach[h], off);
      }
      double* mine = scratch + (size_t(warp) * kSketchHeads + h) * 2;  // [terms, reach]
      if (lane == 0 && h < heads) mine[0] = terms[h], mine[1] = reach[h];
    }
    __syncthreads();
    if (threadIdx.x < heads) {
      double t = 0, r = 0;
      for (int k = 0; k < warps; k++) {
        const double* theirs = scratch + (size_t(k) * kSketchHeads + threadIdx.x) * 2;
        t += theirs[0], r += theirs[1];
      }
      base[g0 + threadIdx.x] = __dadd_rn(slack_of(r), t);
    }
    __syncthreads();  // scratch free for the next heads
  }
  // ub_gj = base_g + Σ_i w_gi·c_ji: warp k sums its share of the dimensions for every position
  // (lane) and kSketchHeads query heads at a time, into part[k]; then the shares are added up.
  const int per_warp = (hd + warps - 1) / warps;
  const int i0 = warp * per_warp, i1 = min(hd, i0 + per_warp);
  for (int j = lane; j < bs; j += 32) {
    for (int g0 = 0; g0 < group; g0 += kSketchHeads) {
      const int heads = min(kSketchHeads, group - g0);
      double acc[kSketchHeads];
      for (int h = 0; h < kSketchHeads; h++) acc[h] = 0;
      for (int i = i0; i < i1; i++) {
        const double c = double(codes[size_t(i) * bs + j]);
#pragma unroll
        for (int h = 0; h < kSketchHeads; h++) {
          if (h < heads) acc[h] = fma(w[size_t(g0 + h) * hd + i], c, acc[h]);
        }
      }
      for (int h = 0; h < heads; h++) part[(size_t(warp) * group + g0 + h) * bs + j] = acc[h];
    }
  }
  __syncthreads();
  for (int gj = threadIdx.x; gj < group * bs; gj += blockDim.x) {
    double u = 0;
    for (int k = 0; k < warps; k++) u += part[size_t(k) * group * bs + gj];
    part[gj] = __dadd_rn(base[gj / bs], u);  // warp 0's share is read only by this thread
  }
  __syncthreads();
  // log Σ_j exp(ub_gj): a warp per query head, the largest first (the host adds them one by one
  // with log_add, a chain of exp/log1p 32 long; this differs from it by an ulp or two).
  for (int g = warp; g < group; g += warps) {
    const double* u = part + size_t(g) * bs;
    double m = -INFINITY;
    for (int j = lane; j < fill; j += 32) m = fmax(m, u[j]);
    for (int off = 16; off > 0; off >>= 1) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, off));
    double sum = 0;
    for (int j = lane; j < fill; j += 32) sum += exp(u[j] - m);
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) table[size_t(g) * n_blocks + b] = m + log(sum);
  }
}

size_t sketch_smem(int group, int hd, int bs) {
  const size_t warps = kSketchThreads / 32;
  return (size_t(hd) * (1 + group) + group + warps * group * bs + warps * kSketchHeads * 2) * sizeof(double) + size_t(hd) * sizeof(float) +
         size_t(hd) * bs;
}

// The sketch bound on the tensor cores (FP64 mma.sync, sm_80+): one warp per block, four blocks a
// CTA. Per block the products are [8 query heads (the group, padded)] × [4 dimensions] by [4 dimensions]
// × [8 positions, one of every kTiles]: the codes' sums Σ_i w_gi·c_ji (A = w, B = codes), and the base's sums Σ_i q_gi·lo_i,
// Σ_i |q_gi|·err_i and Σ_i |q_gi|·max(|lo_i|, |hi_i|) (B's columns 0 and 1, the others zero). The sums
// run in the tensor cores' order: a few ulps from the host's chains, as sketch_kernel's split sums.
constexpr int kMmaWarps = 4;

// D += A·B for mma.sync m8n8k4 in double: this lane's a = A[lane / 4][lane % 4], b = B[lane % 4][lane / 4],
// and d0, d1 = D[lane / 4][2·(lane % 4)], D[lane / 4][2·(lane % 4) + 1].
__device__ __forceinline__ void mma_f64(double& d0, double& d1, double a, double b) {
#if __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};" : "+d"(d0), "+d"(d1) : "d"(a), "d"(b));
#else
  __trap();  // block_bounds_sketch does not launch it there (sketch_mma_runs)
#endif
}

// A code as a double: its bits below 2^52's, less 2^52 (exact; one add).
__device__ __forceinline__ double code_value(unsigned c) { return __hiloint2double(0x43300000, int(c)) - 4503599627370496.0; }

size_t sketch_mma_smem(int head_dim, int block_size) {
  return kMmaWarps * (size_t(head_dim) * (sizeof(double) + sizeof(float)) + size_t(head_dim) * block_size);
}

// kTiles = block_size / 8. Shared, per warp: step [hd] (double), err [hd] (float), codes [hd][block_size].
template <int kTiles>
__global__ void __launch_bounds__(kMmaWarps * 32) sketch_mma_kernel(const BlockBoundsKv kv, const SketchCache cache, const int kv_head,
                                                                    const double* __restrict__ q, const int group,
                                                                    const char* __restrict__ mask, const int n_blocks, const int bits,
                                                                    double* __restrict__ table) {
  grid_dependency_wait();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // The last block first: a tail block's sketch is built from its keys at every launch, by one warp.
  const int b = n_blocks - 1 - (blockIdx.x * kMmaWarps + warp);
  if (b < 0 || !mask[b]) return;
  constexpr int bs = kTiles * 8;
  const int hd = kv.head_dim, fill = fill_of(kv, b), levels = 1 << bits;
  extern __shared__ double smem[];
  double* step = smem + size_t(warp) * hd;
  float* err = reinterpret_cast<float*>(smem + size_t(kMmaWarps) * hd) + size_t(warp) * hd;
  unsigned char* codes = reinterpret_cast<unsigned char*>(reinterpret_cast<float*>(smem + size_t(kMmaWarps) * hd) + size_t(kMmaWarps) * hd) +
                         size_t(warp) * hd * bs;
  const size_t at = size_t(kv.block_table[b]) * kv.n_kv_heads + kv_head;
  const float* lo = kv.summary + at * 2 * hd;
  const float* hi = lo + hd;
  const bool keep = cache.valid && fill == bs;
  const bool kept = keep && cache.valid[at] == bits;
  make_sketch(cache, at, kept, lo, hi, kv.keys + at * bs * hd, hd, bs, fill, levels, lane, 32, codes, err, step);
  __syncwarp();
  if (keep && !kept) keep_sketch(cache, at, bits, hd, bs, codes, err, lane, 32);

  const int g = lane >> 2, c = lane & 3;  // this lane's row (query head) in A and D, and its k in A and B
  const bool head = g < group;
  const double* qg = q + size_t(head ? g : 0) * hd;
  double sums[kTiles][2] = {}, by_q[2] = {}, by_abs_q[2] = {};
#pragma unroll 4
  for (int i0 = 0; i0 < hd; i0 += 4) {
    const int i = i0 + c;
    const double qi = head ? qg[i] : 0.0;
    const double w = __dmul_rn(qi, step[i]);
    // B's columns for the base: 0 is lo_i beside q and err_i beside |q|, 1 is max(|lo_i|, |hi_i|) beside |q|.
    const double lo_i = g == 0 ? double(lo[i]) : 0.0;
    const double err_or_reach = g == 0 ? double(err[i]) : g == 1 ? double(host_maxf(fabsf(lo[i]), fabsf(hi[i]))) : 0.0;
    mma_f64(by_q[0], by_q[1], qi, lo_i);
    mma_f64(by_abs_q[0], by_abs_q[1], fabs(qi), err_or_reach);
    // B[c][g] of tile t is position kTiles·g + t: this lane's codes of row i are kTiles bytes side by side.
    const unsigned char* row = codes + size_t(i) * bs + kTiles * g;
    unsigned word[(kTiles + 3) / 4];
    if (kTiles >= 4) {
#pragma unroll
      for (int k = 0; k < (kTiles + 3) / 4; k++) word[k] = reinterpret_cast<const unsigned*>(row)[k];
    } else {
      word[0] = kTiles == 2 ? *reinterpret_cast<const unsigned short*>(row) : *row;
    }
#pragma unroll
    for (int t = 0; t < kTiles; t++) mma_f64(sums[t][0], sums[t][1], w, code_value((word[t / 4] >> (8 * (t % 4))) & 0xff));
  }
  // base_g = slack_g + Σ_i (q_i·lo_i + |q_i|·err_i): D[g][0] and D[g][1] are in the lane with c = 0.
  double base = c == 0 ? __dadd_rn(slack_of(by_abs_q[1]), __dadd_rn(by_q[0], by_abs_q[0])) : 0.0;
  base = __shfl_sync(0xffffffffu, base, lane & ~3);
  // log Σ_j exp(ub_gj) over the head's positions kTiles·(2c + k) + t, spread over the four lanes of row g.
  double ub[kTiles][2], m = -INFINITY;
#pragma unroll
  for (int t = 0; t < kTiles; t++) {
#pragma unroll
    for (int k = 0; k < 2; k++) {
      ub[t][k] = kTiles * (2 * c + k) + t < fill ? __dadd_rn(base, sums[t][k]) : -INFINITY;
      m = fmax(m, ub[t][k]);
    }
  }
  m = fmax(m, __shfl_xor_sync(0xffffffffu, m, 1));
  m = fmax(m, __shfl_xor_sync(0xffffffffu, m, 2));
  double sum = 0;
#pragma unroll
  for (int t = 0; t < kTiles; t++) sum += exp(ub[t][0] - m) + exp(ub[t][1] - m);
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  sum += __shfl_xor_sync(0xffffffffu, sum, 2);
  if (head && c == 0) table[size_t(g) * n_blocks + b] = m + log(sum);
}

// Whether sketch_mma_kernel runs here: sm_80+, whole k-steps and tiles, a group of at most 8, its
// shared memory within 48 KB, and not switched off (REPO_LENS_CUDA_SKETCH_MMA=0: sketch_kernel).
bool sketch_mma_runs(int group, int head_dim, int block_size) {
  static const bool on = [] {
    int device = 0, major = 0;
    return switched_on("REPO_LENS_CUDA_SKETCH_MMA") && cudaGetDevice(&device) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 8;
  }();
  const int tiles = block_size / 8;
  return on && group <= 8 && head_dim % 4 == 0 && block_size % 8 == 0 && (tiles == 1 || tiles == 2 || tiles == 4 || tiles == 8) &&
         sketch_mma_smem(head_dim, block_size) <= 48 * 1024;
}

constexpr int kLseThreads = 256;

// One CTA per query head: the mask's largest bound, then log Σ exp(bound - largest) + largest.
__global__ void __launch_bounds__(kLseThreads) lse_kernel(const double* __restrict__ table, const int n_blocks,
                                                          const char* __restrict__ mask, double* __restrict__ lse) {
  grid_dependency_wait();
  __shared__ double part[kLseThreads];
  const double* row = table + size_t(blockIdx.x) * n_blocks;
  double m = -INFINITY;
  for (int b = threadIdx.x; b < n_blocks; b += kLseThreads) if (mask[b]) m = fmax(m, row[b]);
  part[threadIdx.x] = m;
  __syncthreads();
  for (int half = kLseThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) part[threadIdx.x] = fmax(part[threadIdx.x], part[threadIdx.x + half]);
    __syncthreads();
  }
  const double top = part[0];
  __syncthreads();
  double s = 0;
  if (top != -INFINITY) for (int b = threadIdx.x; b < n_blocks; b += kLseThreads) if (mask[b]) s += exp(row[b] - top);
  part[threadIdx.x] = s;
  __syncthreads();
  for (int half = kLseThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) lse[blockIdx.x] = top == -INFINITY ? -INFINITY : top + log(part[0]);
}

__global__ void scores_kernel(const double* __restrict__ table, const int group, const int n_blocks, const char* __restrict__ mask,
                              const double* __restrict__ lse, double* __restrict__ score) {
  grid_dependency_wait();
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= n_blocks) return;
  double s = 0;
  if (mask[b])
    for (int g = 0; g < group; g++)
      if (lse[g] != -INFINITY) s = __dadd_rn(s, exp(__dsub_rn(table[size_t(g) * n_blocks + b], lse[g])));
  score[b] = s;
}

// prhs/log_math.h's log_add, operation for operation.
__device__ __forceinline__ double host_log_add(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  const double hi = a > b ? a : b, lo = a > b ? b : a;
  return __dadd_rn(hi, log1p(exp(__dsub_rn(lo, hi))));
}

// One CTA per listed block: a thread per (query head, position) for the scores, then a thread per
// query head for the chain over the positions. Shared: score [group][block_size].
__global__ void exact_kernel(const BlockBoundsKv kv, const int kv_head, const double* __restrict__ q, const int group,
                             const int* __restrict__ blocks, double* __restrict__ out) {
  grid_dependency_wait();
  extern __shared__ double score[];
  const int b = blocks[blockIdx.x], hd = kv.head_dim, bs = kv.block_size, fill = fill_of(kv, b);
  const float* keys = kv.keys + (size_t(kv.block_table[b]) * kv.n_kv_heads + kv_head) * bs * hd;
  for (int item = threadIdx.x; item < group * fill; item += blockDim.x) {
    const int g = item / fill, j = item - g * fill;
    const double* qg = q + size_t(g) * hd;
    const float* k = keys + size_t(j) * hd;
    double s = 0;
    for (int i = 0; i < hd; i++) s = __dadd_rn(s, __dmul_rn(qg[i], double(k[i])));
    score[g * bs + j] = s;
  }
  __syncthreads();
  for (int g = threadIdx.x; g < group; g += blockDim.x) {
    double lse = -INFINITY;
    for (int j = 0; j < fill; j++) lse = host_log_add(lse, score[g * bs + j]);
    out[size_t(blockIdx.x) * group + g] = lse;
  }
}

__global__ void scale_query_kernel(const float* __restrict__ q, const int count, const double scale, double* __restrict__ q_scaled) {
  grid_dependency_wait();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) q_scaled[i] = __dmul_rn(double(q[i]), scale);
}

}  // namespace

void block_bounds_scale_query(const float* q, int count, double scale, double* q_scaled, cudaStream_t stream) {
  if (count <= 0) return;
  const int threads = 256;
  launch_chained("block_bounds_scale_query", scale_query_kernel, dim3((count + threads - 1) / threads), dim3(threads), 0, stream, q, count,
                 scale, q_scaled);
}

bool block_bounds_sketch_supports(int group, int head_dim, int block_size) {
  return group > 0 && head_dim > 0 && block_size > 0 && sketch_smem(group, head_dim, block_size) <= 48 * 1024;
}

void block_bounds_minmax(const BlockBoundsKv& kv, int kv_head, const double* q, int group, const char* mask, int n_blocks,
                         const double* log_fill, double* table, cudaStream_t stream) {
  if (n_blocks <= 0 || group <= 0) return;
  const int items = n_blocks * group;
  static const bool chunks = switched_on("REPO_LENS_CUDA_MINMAX_CHUNKS");
  if (chunks) {
    return launch_chained("block_bounds_minmax", minmax_chunks_kernel, dim3((items + kChainItems - 1) / kChainItems),
                          dim3((kTermWarps + 1) * 32), 0, stream, kv, kv_head, q, group, mask, n_blocks, log_fill, table);
  }
  const int threads = 128;
  launch_chained("block_bounds_minmax", minmax_kernel, dim3((items + threads - 1) / threads), dim3(threads), 0, stream, kv, kv_head, q,
                 group, mask, n_blocks, log_fill, table);
}

void block_bounds_sketch(const BlockBoundsKv& kv, const SketchCache& cache, int kv_head, const double* q, int group, const char* mask,
                         int n_blocks, int bits, double* table, cudaStream_t stream) {
  if (!block_bounds_sketch_supports(group, kv.head_dim, kv.block_size)) throw std::runtime_error("block_bounds: sketch shape too large for shared memory");
  if (bits != 4 && bits != 8) throw std::runtime_error("block_bounds: sketch bits must be 4 or 8");
  if (n_blocks <= 0) return;
  if (sketch_mma_runs(group, kv.head_dim, kv.block_size)) {
    static const bool carveout = [] {  // shared memory over L1, so that its CTAs (22.5 KB each at head dim 128) fill the SMs
      for (auto kernel : {sketch_mma_kernel<1>, sketch_mma_kernel<2>, sketch_mma_kernel<4>, sketch_mma_kernel<8>}) {
        RL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, int(cudaSharedmemCarveoutMaxShared)));
      }
      return true;
    }();
    (void)carveout;
    const dim3 grid((n_blocks + kMmaWarps - 1) / kMmaWarps), cta(kMmaWarps * 32);
    const size_t smem = sketch_mma_smem(kv.head_dim, kv.block_size);
    switch (kv.block_size / 8) {
      case 1: return launch_chained("block_bounds_sketch", sketch_mma_kernel<1>, grid, cta, smem, stream, kv, cache, kv_head, q, group, mask, n_blocks, bits, table);
      case 2: return launch_chained("block_bounds_sketch", sketch_mma_kernel<2>, grid, cta, smem, stream, kv, cache, kv_head, q, group, mask, n_blocks, bits, table);
      case 4: return launch_chained("block_bounds_sketch", sketch_mma_kernel<4>, grid, cta, smem, stream, kv, cache, kv_head, q, group, mask, n_blocks, bits, table);
      case 8: return launch_chained("block_bounds_sketch", sketch_mma_kernel<8>, grid, cta, smem, stream, kv, cache, kv_head, q, group, mask, n_blocks, bits, table);
    }
  }
  launch_chained("block_bounds_sketch", sketch_kernel, dim3(n_blocks), dim3(kSketchThreads), sketch_smem(group, kv.head_dim, kv.block_size), stream,
                 kv, cache, kv_head, q, group, mask, n_blocks, bits, table);
}

void block_bounds_exact(const BlockBoundsKv& kv, int kv_head, const double* q, int group, const int* blocks, int n, double* out,
                        cudaStream_t stream) {
  if (n <= 0 || group <= 0) return;
  const size_t smem = size_t(group) * kv.block_size * sizeof(double);
  if (smem > 48 * 1024) throw std::runtime_error("block_bounds: exact masses' shape too large for shared memory");
  launch_chained("block_bounds_exact", exact_kernel, dim3(n), dim3(128), smem, stream, kv, kv_head, q, group, blocks, out);
}

void block_bounds_lse(const double* table, int group, int n_blocks, const char* mask, double* lse, cudaStream_t stream) {
  if (group <= 0) return;
  launch_chained("block_bounds_lse", lse_kernel, dim3(group), dim3(kLseThreads), 0, stream, table, n_blocks, mask, lse);
}

void block_bounds_scores(const double* table, int group, int n_blocks, const char* mask, const double* lse, double* score,
                         cudaStream_t stream) {
  if (n_blocks <= 0) return;
  const int threads = 128;
  launch_chained("block_bounds_scores", scores_kernel, dim3((n_blocks + threads - 1) / threads), dim3(threads), 0, stream, table, group,
                 n_blocks, mask, lse, score);
}

}  // namespace rl::cuda
