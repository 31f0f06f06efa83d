#include "decode_attention.cuh"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "device_util.cuh"
#include "mma.cuh"

namespace rl::cuda {
namespace {

constexpr int kBlock = 32;       // positions per KV block in these kernels: lane = position
constexpr int kMaxSplits = 256;  // partial results per query head (bounds the workspace)
constexpr float kNegBig = -1e30f;  // "no score yet": finite, so exp2f(kNegBig - m) is 0, never NaN

#ifndef RL_ATTN_WARPS
#define RL_ATTN_WARPS 4
#endif
#ifndef RL_ATTN_STAGES
#define RL_ATTN_STAGES 1
#endif
constexpr int kWarps = RL_ATTN_WARPS;    // warps per CTA; each walks its own blocks
constexpr int kStages = RL_ATTN_STAGES;  // K/V tiles in flight per warp

template <int D>
struct PartialSmem {
  static constexpr int tile_halves = kBlock * D;  // one K or V tile
  static constexpr size_t bytes = size_t(kWarps) * kStages * 2 * tile_halves * sizeof(__half);
  static constexpr int max_group = 8;  // query heads of a group are rows 0..7 of the MMA tile
  static_assert(max_group * (D + 2) * sizeof(float) <= kStages * 2 * tile_halves * sizeof(__half),
                "a warp's result must fit in its tiles");
};

// The m16n8k16 MMA (mma.cuh) with rows 8..15 of A zero: only a0 and a2 are passed.
__device__ __forceinline__ void mma_rows0to7(float (&c)[4], unsigned a0, unsigned a2, unsigned b0, unsigned b1) {
  const unsigned a[4] = {a0, 0u, a2, 0u};
  mma_f16(c, a, b0, b1);
}

constexpr int kMergeHeld = 16;  // splits whose parts a thread has in flight at once

// Merges the n_splits parts of the G query heads of KV head kvh (log-sum-exp weights) and writes
// their outputs, log-sum-exps and, for a sparse step, delta_bound. A thread takes 4 dims of a head
// at a time and folds kMergeHeld splits a round, all their loads in flight together.
template <int D, int G>
__device__ __forceinline__ void merge_splits(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                                             const int n_splits, const int kvh,
                                             const float* __restrict__ log2_left_out, float* __restrict__ out,
                                             float* __restrict__ lse, float* __restrict__ delta_bound) {
  constexpr int kVecs = D / 4;  // float4s in a row of D
  for (int item = threadIdx.x; item < G * kVecs; item += kWarps * 32) {
    const int h = kvh * G + item / kVecs, c = item % kVecs;
    const float2* ml = reinterpret_cast<const float2*>(part_ml) + size_t(h) * n_splits;
    const float4* po = reinterpret_cast<const float4*>(part_o) + size_t(h) * n_splits * kVecs + c;
    float m = kNegBig, l = 0.f;
    float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int first = 0; first < n_splits; first += kMergeHeld) {
      float2 ml_s[kMergeHeld];
      float4 o_s[kMergeHeld];
#pragma unroll
      for (int j = 0; j < kMergeHeld; ++j) {
        const bool in = first + j < n_splits;
        ml_s[j] = in ? __ldcg(ml + first + j) : make_float2(kNegBig, 0.f);
        o_s[j] = in ? __ldcg(po + size_t(first + j) * kVecs) : make_float4(0.f, 0.f, 0.f, 0.f);
      }
      float m_new = m;
#pragma unroll
      for (int j = 0; j < kMergeHeld; ++j) m_new = fmaxf(m_new, ml_s[j].x);
      const float alpha = exp2f(m - m_new);
      l *= alpha, o.x *= alpha, o.y *= alpha, o.z *= alpha, o.w *= alpha;
      m = m_new;
#pragma unroll
      for (int j = 0; j < kMergeHeld; ++j) {
        const float w = exp2f(ml_s[j].x - m);
        l += ml_s[j].y * w;
        o.x += o_s[j].x * w, o.y += o_s[j].y * w, o.z += o_s[j].z * w, o.w += o_s[j].w * w;
      }
    }
    reinterpret_cast<float4*>(out)[size_t(h) * kVecs + c] = make_float4(o.x / l, o.y / l, o.z / l, o.w / l);
    if (c == 0) {
      const float lse2 = m + log2f(l);
      if (lse) lse[h] = lse2 * 0.69314718055994531f;
      if (delta_bound) {
        // left-out mass <= U / (Z + U) for any left-out sum <= U, with Z the attended sum.
        const float log2_u = log2_left_out ? log2_left_out[h] : -INFINITY;
        delta_bound[h] = 1.f / (1.f + exp2f(lse2 - log2_u));
      }
    }
  }
}

// One CTA: KV head blockIdx.y, list positions [split * per_split, +per_split). Warp w takes
// positions begin + w, begin + w + kWarps, ... through its own cp.async pipeline of kStages K/V
// tiles, and per 32-position block runs S = Q.K^T and O += P.V on the tensor cores with the G
// query heads of the group as rows of a 16-row tile (lane: row lane / 4, columns 2 * (lane % 4)).
// Tiles are stored with 16-byte chunks XOR-swizzled by (row & 7): ldmatrix is conflict-free.
// Writes unnormalised partial outputs part_o [n_heads][splits][D] and (max, sum) part_ml
// [n_heads][splits][2], in log2 units.
template <int D, int G>
__global__ void __launch_bounds__(kWarps * 32)
    attention_partial_kernel(const float* __restrict__ q, const PagedKvLayer kv, const float scale_log2,
                             const int* __restrict__ block_list, const int list_len, const int list_stride,
                             const unsigned* __restrict__ list_ready, const unsigned list_ready_target,
                             const int per_split, float* __restrict__ part_o, float* __restrict__ part_ml,
                             unsigned* __restrict__ done, const float* __restrict__ log2_left_out,
                             float* __restrict__ out, float* __restrict__ lse, float* __restrict__ delta_bound) {
  using S = PartialSmem<D>;
  static_assert(G <= S::max_group, "GQA group too large");
  constexpr int kChunks = D / 8;  // 16-byte chunks in a row of D fp16
  constexpr int kSteps = D / 16;  // k-steps of Q.K^T; also pairs of 8-dim tiles in P.V
  static_assert(kChunks >= 8, "head_dim must be >= 64");

  extern __shared__ __align__(16) unsigned char smem[];
  __half* tiles = reinterpret_cast<__half*>(smem);  // [kWarps][kStages][K,V][kBlock][D]

  const int kvh = blockIdx.y;
  const int split = blockIdx.x;
  const int n_splits = gridDim.x;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int row = lane >> 2;  // query head within the group (rows >= G are padding)
  const int quad = lane & 3;
  __half* my_tiles = tiles + size_t(warp) * kStages * 2 * S::tile_halves;
  if (list_ready) {  // this head's list is out once its count is reached
    if (threadIdx.x == 0)
      while (load_acquire(list_ready + kvh) < list_ready_target) {
      }
    __syncthreads();
  } else {
    grid_dependency_wait();
  }

  // Q as MMA A fragments, hi and lo halves: a0 = q[row][16k + 2 quad, +1], a2 = the same + 8.
  unsigned qa_hi[kSteps][2], qa_lo[kSteps][2];
  {
    const float* qr = q + size_t(kvh * G + (row < G ? row : 0)) * D;
#pragma unroll
    for (int k = 0; k < kSteps; ++k)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 x = row < G ? *reinterpret_cast<const float2*>(qr + 16 * k + 8 * h + 2 * quad)
                                 : make_float2(0.f, 0.f);
        split_half2(x.x * scale_log2, x.y * scale_log2, qa_hi[k][h], qa_lo[k][h]);
      }
  }

  const int begin = split * per_split;
  const int end = min(begin + per_split, list_len);
  const int* list = block_list ? block_list + size_t(kvh) * list_stride : nullptr;

  auto issue = [&](int pos, int stage) {
    const int logical = list ? list[pos] : pos;
    const size_t off = kv.tile_offset(kv.block_table[logical], kvh);
    const __half* kg = kv.k + off;
    const __half* vg = kv.v + off;
    __half* ks = my_tiles + stage * 2 * S::tile_halves;
    __half* vs = ks + S::tile_halves;
#pragma unroll
    for (int i = lane; i < kBlock * kChunks; i += 32) {
      const int t = i / kChunks, c = i % kChunks;
      const int at = t * D + ((c ^ (t & 7)) * 8);
      cp_async16(ks + at, kg + size_t(i) * 8);
      cp_async16(vs + at, vg + size_t(i) * 8);
    }
  };

  float m_run = kNegBig, l_run = 0.f;  // this lane's row: running max (log2 units), its columns' sum
  float acc[2 * kSteps][4];            // O tile: 8-dim n-tiles; c0, c1 = row, dims 8 n + 2 quad, +1
#pragma unroll
  for (int n = 0; n < 2 * kSteps; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;

  // Pipeline: the warp keeps kStages - 1 blocks in flight ahead of the one it computes.
  int stage = 0;
#pragma unroll
  for (int i = 0; i + 1 < kStages; ++i) {
    if (begin + warp + i * kWarps < end) issue(begin + warp + i * kWarps, i);
    cp_async_commit();
  }
  for (int pos = begin + warp; pos < end; pos += kWarps) {
    const int ahead = pos + (kStages - 1) * kWarps;
    if (ahead < end) issue(ahead, (stage + kStages - 1) % kStages);
    cp_async_commit();
    cp_async_wait<kStages - 1>();
    __syncwarp();
    const __half* ks = my_tiles + stage * 2 * S::tile_halves;
    __half* vs = my_tiles + stage * 2 * S::tile_halves + S::tile_halves;
    const int fill = kv.fill(list ? list[pos] : pos);
    if (fill < kBlock) {  // rows past the tail hold stale data (maybe NaN, and 0 * NaN is NaN)
      for (int i = fill * kChunks + lane; i < kBlock * kChunks; i += 32)
        *reinterpret_cast<uint4*>(vs + i * 8) = make_uint4(0, 0, 0, 0);
      __syncwarp();
    }

    // S = Q.K^T: 4 n-tiles of 8 positions; sc[n][0, 1] = row, positions 8 n + 2 quad, +1.
    float sc[4][4];
#pragma unroll
    for (int n = 0; n < 4; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[n][e] = 0.f;
#pragma unroll
    for (int k2 = 0; k2 < kSteps / 2; ++k2) {
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        const int t = 8 * n + (lane & 7), c = 4 * k2 + (lane >> 3);
        unsigned b[4];  // chunks 4 k2 .. 4 k2 + 3 of positions 8 n ..: k-steps 2 k2 and 2 k2 + 1
        ldmatrix_x4(b, ks + t * D + ((c ^ (t & 7)) * 8));
        mma_rows0to7(sc[n], qa_hi[2 * k2][0], qa_hi[2 * k2][1], b[0], b[1]);
        mma_rows0to7(sc[n], qa_lo[2 * k2][0], qa_lo[2 * k2][1], b[0], b[1]);
        mma_rows0to7(sc[n], qa_hi[2 * k2 + 1][0], qa_hi[2 * k2 + 1][1], b[2], b[3]);
        mma_rows0to7(sc[n], qa_lo[2 * k2 + 1][0], qa_lo[2 * k2 + 1][1], b[2], b[3]);
      }
    }

    // Online softmax of this lane's row (the 4 lanes of a quad share it).
    float m_blk = -INFINITY;
#pragma unroll
    for (int n = 0; n < 4; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        if (8 * n + 2 * quad + e >= fill) sc[n][e] = -INFINITY;
        m_blk = fmaxf(m_blk, sc[n][e]);
      }
    m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 1));
    m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 2));
    const float m_new = fmaxf(m_run, m_blk);
    const float alpha = exp2f(m_run - m_new);
    m_run = m_new;
    l_run *= alpha;
#pragma unroll
    for (int n = 0; n < 4; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        sc[n][e] = exp2f(sc[n][e] - m_new);
        l_run += sc[n][e];
      }
#pragma unroll
    for (int n = 0; n < 2 * kSteps; ++n) {
      acc[n][0] *= alpha;
      acc[n][1] *= alpha;
    }

    // O += P.V: k-steps of 16 positions; P's C fragments are the A fragments (a0: n-tile 2 k,
    // a2: n-tile 2 k + 1). V tiles via ldmatrix.trans: b0, b1 of dims 8 n .. for two n at once.
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      unsigned p0_hi, p0_lo, p2_hi, p2_lo;
      split_half2(sc[2 * k][0], sc[2 * k][1], p0_hi, p0_lo);
      split_half2(sc[2 * k + 1][0], sc[2 * k + 1][1], p2_hi, p2_lo);
#pragma unroll
      for (int np = 0; np < kSteps; ++np) {
        const int t = 16 * k + ((lane >> 3) & 1) * 8 + (lane & 7), c = 2 * np + (lane >> 4);
        unsigned b[4];
        ldmatrix_x4_trans(b, vs + t * D + ((c ^ (t & 7)) * 8));
        mma_rows0to7(acc[2 * np], p0_hi, p2_hi, b[0], b[1]);
        mma_rows0to7(acc[2 * np], p0_lo, p2_lo, b[0], b[1]);
        mma_rows0to7(acc[2 * np + 1], p0_hi, p2_hi, b[2], b[3]);
        mma_rows0to7(acc[2 * np + 1], p0_lo, p2_lo, b[2], b[3]);
      }
    }
    __syncwarp();  // the tile is refilled by the next iteration's issue
    stage = (stage + 1) % kStages;
  }
  cp_async_wait<0>();
  __syncwarp();
  // The previous kernel ends before this one (the merge reads what it wrote last: the left-out bound).
  if (list_ready) grid_dependency_wait();
  grid_dependency_release();  // the next kernel may get scheduled while this one drains

  // Warp result -> its own tile area: acc [G][D], then m [G], l [G].
  l_run += __shfl_xor_sync(0xffffffffu, l_run, 1);
  l_run += __shfl_xor_sync(0xffffffffu, l_run, 2);
  float* red = reinterpret_cast<float*>(my_tiles);
  if (row < G) {
#pragma unroll
    for (int n = 0; n < 2 * kSteps; ++n) {
      red[row * D + 8 * n + 2 * quad] = acc[n][0];
      red[row * D + 8 * n + 2 * quad + 1] = acc[n][1];
    }
    if (quad == 0) {
      red[G * D + row] = m_run;
      red[G * D + G + row] = l_run;
    }
  }
  __syncthreads();

  // CTA result: merge the warps.
  auto warp_red = [&](int w) {
    return reinterpret_cast<const float*>(tiles + size_t(w) * kStages * 2 * S::tile_halves);
  };
  for (int i = threadIdx.x; i < G * D; i += kWarps * 32) {
    const int g = i / D, d = i % D;
    float m_max = kNegBig;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m_max = fmaxf(m_max, warp_red(w)[G * D + g]);
    float o = 0.f, sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float scale = exp2f(warp_red(w)[G * D + g] - m_max);
      o += warp_red(w)[g * D + d] * scale;
      sum += warp_red(w)[G * D + G + g] * scale;
    }
    const size_t out_row = size_t(kvh * G + g) * n_splits + split;
    part_o[out_row * D + d] = o;
    if (d == 0) {
      part_ml[out_row * 2] = m_max;
      part_ml[out_row * 2 + 1] = sum;
    }
  }

  // The last CTA of the KV head to finish merges its splits: no kernel boundary after the reads.
  // The count releases the CTA's part (written before the barrier) and acquires the parts of the
  // CTAs counted before it. The flag goes through the barrier, not static shared memory: that
  // would move the tiles off the 128-byte alignment of their swizzle (dense 8-10 % slower).
  __syncthreads();
  bool last = false;
  if (threadIdx.x == 0) {
    last = atomic_add_acq_rel(done + kvh, 1u) == unsigned(n_splits - 1);
    if (last) done[kvh] = 0u;  // every CTA of this call has counted: ready for the next call
  }
  if (!__syncthreads_or(last)) return;
  merge_splits<D, G>(part_o, part_ml, n_splits, kvh, log2_left_out, out, lse, delta_bound);
}

template <int D, int G>
void launch(const DecodeAttentionArgs& a, int list_len, cudaStream_t stream) {
  using S = PartialSmem<D>;
  auto kernel = attention_partial_kernel<D, G>;
  static int ctas_per_sm = [&] {
    RL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(S::bytes)));
    int n = 0;
    RL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kWarps * 32, S::bytes));
    if (n < 1) throw std::runtime_error("decode attention kernel does not fit on this GPU");
    return n;
  }();
  static const int sms = multiprocessor_count();

  const int n_kv = a.kv.n_kv_heads;
  int splits = (sms * ctas_per_sm + n_kv - 1) / n_kv;
  splits = std::min({splits, (list_len + kWarps - 1) / kWarps, kMaxSplits});
  splits = std::max(splits, 1);
  const int per_split = (list_len + splits - 1) / splits;
  splits = (list_len + per_split - 1) / per_split;

  float* part_o = a.workspace;
  float* part_ml = a.workspace + size_t(a.n_heads) * kMaxSplits * D;
  unsigned* done = reinterpret_cast<unsigned*>(part_ml + size_t(a.n_heads) * kMaxSplits * 2);
  const float scale_log2 = a.scale * 1.4426950408889634f;
  launch_chained("attention_partial_kernel", kernel, dim3(splits, n_kv), dim3(kWarps * 32), S::bytes, stream, a.q,
                 a.kv, scale_log2, a.block_list, list_len, a.list_stride, a.block_list ? a.list_ready : nullptr,
                 a.list_ready_target, per_split, part_o, part_ml, done, a.log2_left_out, a.out,
                 a.lse, a.delta_bound);
}

template <int D>
void dispatch_group(const DecodeAttentionArgs& a, int group, int list_len, cudaStream_t s) {
  switch (group) {
    case 1: return launch<D, 1>(a, list_len, s);
    case 2: return launch<D, 2>(a, list_len, s);
    case 4: return launch<D, 4>(a, list_len, s);
    case 6: return launch<D, 6>(a, list_len, s);
    case 7: return launch<D, 7>(a, list_len, s);
    case 8: return launch<D, 8>(a, list_len, s);
  }
}

}  // namespace

bool decode_attention_supports(int head_dim, int group, int block_size) {
  const bool dim_ok = head_dim == 64 || head_dim == 128;
  const bool group_ok = group == 1 || group == 2 || group == 4 || group == 6 || group == 7 || group == 8;
  return dim_ok && group_ok && block_size == kBlock;
}

size_t decode_attention_workspace_floats(int n_heads, int head_dim) {
  return size_t(n_heads) * kMaxSplits * (head_dim + 2) + size_t(n_heads);  // parts, then a count per KV head
}

void decode_attention(const DecodeAttentionArgs& a, cudaStream_t stream) {
  const int n_kv = a.kv.n_kv_heads;
  if (n_kv <= 0 || a.n_heads % n_kv != 0) throw std::runtime_error("decode_attention: n_heads must be a multiple of n_kv_heads");
  const int group = a.n_heads / n_kv;
  if (!decode_attention_supports(a.kv.head_dim, group, a.kv.block_size))
    throw std::runtime_error("decode_attention: no kernel for head_dim " + std::to_string(a.kv.head_dim) + ", group " +
                             std::to_string(group) + ", block size " + std::to_string(a.kv.block_size));
  const int list_len = a.block_list ? a.list_len : a.kv.n_logical();
  if (list_len <= 0) throw std::runtime_error("decode_attention: nothing to attend to");
  if (a.kv.head_dim == 64) dispatch_group<64>(a, group, list_len, stream);
  else dispatch_group<128>(a, group, list_len, stream);
}

}  // namespace rl::cuda
