#include "decode_attention.cuh"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kBlock = 32;       // positions per KV block in these kernels: lane = position
constexpr int kMaxSplits = 256;  // partial results per query head (bounds the workspace)
constexpr float kNegBig = -1e30f;  // "no score yet": finite, so exp2f(kNegBig - m) is 0, never NaN

#ifndef RL_ATTN_WARPS
#define RL_ATTN_WARPS 4
#endif
#ifndef RL_ATTN_STAGES
#define RL_ATTN_STAGES 2
#endif
constexpr int kWarps = RL_ATTN_WARPS;    // warps per CTA; each walks its own blocks
constexpr int kStages = RL_ATTN_STAGES;  // K/V tiles in flight per warp (1 or 2)

template <int D, int G>
struct PartialSmem {
  static constexpr int q_floats = G * D;               // the group's queries, pre-scaled
  static constexpr int p_floats = kWarps * kBlock * G;  // each warp's probabilities [pos][g]
  static constexpr int tile_halves = kBlock * D;        // one K or V tile
  static constexpr size_t bytes =
      (q_floats + p_floats) * sizeof(float) + size_t(kWarps) * kStages * 2 * tile_halves * sizeof(__half);
  static_assert(G * (D + 2) <= kStages * tile_halves, "warp's reduction must fit in its tiles");
};

// One CTA: KV head blockIdx.y, list positions [split * per_split, +per_split). Warp w takes
// positions begin + w, begin + w + kWarps, ...; lane i scores position i of each block for all
// G query heads, then the warp accumulates P.V with each lane holding 8 dims of a row.
// Writes unnormalised partial outputs part_o [n_heads][splits][D] and (max, sum) part_ml
// [n_heads][splits][2], in log2 units.
template <int D, int G>
__global__ void __launch_bounds__(kWarps * 32)
    attention_partial_kernel(const float* __restrict__ q, const PagedKvLayer kv, const float scale_log2,
                             const int* __restrict__ block_list, const int list_len, const int list_stride,
                             const int per_split, float* __restrict__ part_o, float* __restrict__ part_ml) {
  using S = PartialSmem<D, G>;
  constexpr int kChunks = D / 8;           // 16-byte chunks in a row of D fp16
  constexpr int kRowsPerPass = 32 / kChunks;  // rows a warp covers per 16-byte load in P.V
  static_assert(kChunks >= 8 && kChunks <= 32, "head_dim must be 64..256");

  extern __shared__ __align__(16) unsigned char smem[];
  float* q_s = reinterpret_cast<float*>(smem);         // [G][D]
  float* p_all = q_s + S::q_floats;                    // [kWarps][kBlock][G]
  __half* tiles = reinterpret_cast<__half*>(p_all + S::p_floats);  // [kWarps][kStages][K,V][kBlock][D]

  const int kvh = blockIdx.y;
  const int split = blockIdx.x;
  const int n_splits = gridDim.x;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  float* p_s = p_all + warp * kBlock * G;
  __half* my_tiles = tiles + size_t(warp) * kStages * 2 * S::tile_halves;

  for (int i = threadIdx.x; i < G * D; i += kWarps * 32) q_s[i] = q[size_t(kvh) * G * D + i] * scale_log2;
  __syncthreads();

  const int begin = split * per_split;
  const int end = min(begin + per_split, list_len);
  const int* list = block_list ? block_list + size_t(kvh) * list_stride : nullptr;

  // K rows are stored with their 16-byte chunks XOR-swizzled by (row & 7) so that lanes reading
  // the same chunk of 8 consecutive rows hit different banks.
  auto issue = [&](int pos, int stage) {
    const int logical = list ? list[pos] : pos;
    const size_t off = kv.tile_offset(kv.block_table[logical], kvh);
    const __half* kg = kv.k + off;
    const __half* vg = kv.v + off;
    __half* ks = my_tiles + stage * 2 * S::tile_halves;
    __half* vs = ks + S::tile_halves;
#pragma unroll
    for (int i = lane; i < kBlock * kChunks; i += 32) {
      const int row = i / kChunks, c = i % kChunks;
      cp_async16(ks + row * D + ((c ^ (row & 7)) * 8), kg + size_t(i) * 8);
      cp_async16(vs + size_t(i) * 8, vg + size_t(i) * 8);
    }
  };

  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = kNegBig;
    l[g] = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[g][j] = 0.f;
  }

  int stage = 0;
  int pos = begin + warp;
  if (pos < end) issue(pos, 0);
  cp_async_commit();
  for (; pos < end; pos += kWarps) {
    const int next = pos + kWarps;
    if constexpr (kStages == 2) {
      if (next < end) issue(next, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncwarp();
    const __half* ks = my_tiles + stage * 2 * S::tile_halves;
    const __half* vs = ks + S::tile_halves;
    const int fill = kv.fill(list ? list[pos] : pos);

    // s[g] = (q_g . k_lane) * scale * log2(e)
    float s[G];
#pragma unroll
    for (int g = 0; g < G; ++g) s[g] = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      float kf[8];
      unpack8(*reinterpret_cast<const uint4*>(ks + lane * D + ((c ^ (lane & 7)) * 8)), kf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float4 qa = *reinterpret_cast<const float4*>(q_s + g * D + c * 8);
        const float4 qb = *reinterpret_cast<const float4*>(q_s + g * D + c * 8 + 4);
        s[g] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] + qb.y * kf[5] +
                qb.z * kf[6] + qb.w * kf[7];
      }
    }
    const bool valid = lane < fill;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float sg = valid ? s[g] : -INFINITY;
      const float m_new = fmaxf(m[g], warp_max(sg));
      const float alpha = exp2f(m[g] - m_new);
      const float p = exp2f(sg - m_new);
      m[g] = m_new;
      l[g] = l[g] * alpha + p;  // this lane's positions only; summed over the warp at the end
      p_s[lane * G + g] = p;
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[g][j] *= alpha;
    }
    __syncwarp();

    // acc[g][j] += p[t][g] * v[t][chunk * 8 + j] over this lane's rows t
    const int row0 = lane / kChunks, chunk = lane % kChunks;
#pragma unroll
    for (int i = 0; i < kBlock / kRowsPerPass; ++i) {
      const int t = row0 + i * kRowsPerPass;
      if (t < fill) {  // rows past the tail hold stale data (maybe NaN): skip, never multiply by 0
        float vf[8];
        unpack8(*reinterpret_cast<const uint4*>(vs + t * D + chunk * 8), vf);
#pragma unroll
        for (int g = 0; g < G; ++g) {
          const float p = p_s[t * G + g];
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[g][j] += p * vf[j];
        }
      }
    }
    __syncwarp();
    if constexpr (kStages == 1) {
      if (next < end) issue(next, 0);
      cp_async_commit();
    }
    if constexpr (kStages == 2) stage ^= 1;
  }
  cp_async_wait<0>();

  // Warp result -> its own tile area: acc [G][D], then m [G], l [G].
#pragma unroll
  for (int g = 0; g < G; ++g) {
    l[g] = warp_sum(l[g]);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int off = kChunks; off < 32; off <<= 1) acc[g][j] += __shfl_xor_sync(0xffffffffu, acc[g][j], off);
  }
  __syncwarp();
  float* red = reinterpret_cast<float*>(my_tiles);
  if (lane < kChunks) {
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int j = 0; j < 8; ++j) red[g * D + lane * 8 + j] = acc[g][j];
  }
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      red[G * D + g] = m[g];
      red[G * D + G + g] = l[g];
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
    const size_t row = size_t(kvh * G + g) * n_splits + split;
    part_o[row * D + d] = o;
    if (d == 0) {
      part_ml[row * 2] = m_max;
      part_ml[row * 2 + 1] = sum;
    }
  }
}

// One CTA per query head, one thread per dim: merges the splits.
__global__ void attention_combine_kernel(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                                         const int n_splits, const int head_dim,
                                         const float* __restrict__ log2_left_out, float* __restrict__ out,
                                         float* __restrict__ lse, float* __restrict__ delta_bound) {
  const int h = blockIdx.x;
  const float* ml = part_ml + size_t(h) * n_splits * 2;
  float m_max = kNegBig;
  for (int s = 0; s < n_splits; ++s) m_max = fmaxf(m_max, ml[2 * s]);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.f, sum = 0.f;
    for (int s = 0; s < n_splits; ++s) {
      const float w = exp2f(ml[2 * s] - m_max);
      sum += ml[2 * s + 1] * w;
      o += part_o[(size_t(h) * n_splits + s) * head_dim + d] * w;
    }
    out[size_t(h) * head_dim + d] = o / sum;
    if (d == 0) {
      const float lse2 = m_max + log2f(sum);
      if (lse) lse[h] = lse2 * 0.69314718055994531f;
      if (delta_bound) {
        // left-out mass <= U / (Z + U) for any left-out sum <= U, with Z the attended sum.
        const float log2_u = log2_left_out ? log2_left_out[h] : -INFINITY;
        delta_bound[h] = 1.f / (1.f + exp2f(lse2 - log2_u));
      }
    }
  }
}

template <int D, int G>
void launch(const DecodeAttentionArgs& a, int list_len, cudaStream_t stream) {
  using S = PartialSmem<D, G>;
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
  const float scale_log2 = a.scale * 1.4426950408889634f;
  kernel<<<dim3(splits, n_kv), kWarps * 32, S::bytes, stream>>>(a.q, a.kv, scale_log2, a.block_list, list_len,
                                                                a.list_stride, per_split, part_o, part_ml);
  RL_CUDA_CHECK_LAUNCH("attention_partial_kernel");
  attention_combine_kernel<<<a.n_heads, D, 0, stream>>>(part_o, part_ml, splits, D, a.log2_left_out, a.out, a.lse,
                                                         a.delta_bound);
  RL_CUDA_CHECK_LAUNCH("attention_combine_kernel");
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
  return size_t(n_heads) * kMaxSplits * (head_dim + 2);
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
