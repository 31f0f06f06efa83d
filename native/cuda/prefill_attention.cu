#include "prefill_attention.cuh"

#include <algorithm>
#include <stdexcept>

#include "bulk_copy.cuh"
#include "device_util.cuh"
#include "mma.cuh"
#include "switches.h"
#include "wgmma.cuh"

namespace rl::cuda {
namespace {

constexpr int kWarps = 8;            // 8 warps and 1 CTA an SM beat 4 warps and 2 (bench/gpu/NOTES.md)
constexpr int kRows = 16 * kWarps;   // query rows (token, head) per CTA: one 16-row MMA tile per warp
constexpr int kMaxSplits = 64;       // shares of the keys per (query tile, KV head)
constexpr int kMinTilesPerSplit = 4;
constexpr float kNegBig = -1e30f;    // "no score yet": finite, so exp2(kNegBig - m) is 0, never NaN
constexpr int kPScaleLog2 = 12;      // probabilities (<= 1) scaled by 2^12 before the fp16 split keep their lo halves
constexpr float kPScale = float(1 << kPScaleLog2);  // normal; Half scales them inside exp2's argument

// fp16 planes of the keys and values: K hi, K lo, V hi, V lo (Float32) or K, V (Half).
__host__ __device__ constexpr int planes(PrefillPrecision p) { return p == PrefillPrecision::Float32 ? 4 : 2; }
// Keys per K/V tile: Half's smaller operands leave room for 64 (at 128K, 1024 queries: 3.55 ms
// against 4.30 with 32; two CTAs an SM were slower either way; bench/gpu/NOTES.md).
// The wgmma kernel's tiles are 64 keys in both precisions (its Q.K^T is one m64n64 product).
__host__ __device__ constexpr int keys_per_tile(PrefillPrecision p, bool wgmma) {
  return p == PrefillPrecision::Float32 && !wgmma ? 32 : 64;
}
// K/V tiles in flight (cp.async stages): Half with three, 1024 queries at 128K took 3.50 ms against 4.19
// with two (four: 3.45), a whole 128K prefill 10.2 s against 11.3 (bench/gpu/NOTES.md, session 9); four
// again after session 14's leaner loop: 2.69-2.78 against 2.73-2.77 ms, not worth the shared memory.
// The wgmma kernel keeps one more: the producer copies ahead of both warpgroups, and Half's tile
// before the current one is still read by its P.V.
__host__ __device__ constexpr int stages(PrefillPrecision p, bool wgmma) {
  return p == PrefillPrecision::Float32 ? (wgmma ? 3 : 2) : wgmma ? 4 : 3;
}

// Threads of a CTA: kWarps of rows, and on wgmma a warpgroup more whose first thread copies the tiles
// (a whole warpgroup: registers are shared out by warpgroups; setmaxnreg gives its to the others).
__host__ __device__ constexpr int threads(bool wgmma) { return (kWarps + (wgmma ? 4 : 0)) * 32; }

template <int D, PrefillPrecision P, bool W>
struct Smem {
  static constexpr int tile = keys_per_tile(P, W) * D;  // elements of one plane's tile
  static constexpr size_t bytes = stages(P, W) * planes(P) * tile * sizeof(__half);
};

// Eight staged floats -> one 16-byte chunk of hi halves and one of lo halves.
__device__ __forceinline__ void split8(const float* src, __half* hi, __half* lo) {
  const float4 a = *reinterpret_cast<const float4*>(src), b = *reinterpret_cast<const float4*>(src + 4);
  uint4 h, l;
  split_half2(a.x, a.y, h.x, l.x);
  split_half2(a.z, a.w, h.y, l.y);
  split_half2(b.x, b.y, h.z, l.z);
  split_half2(b.z, b.w, h.w, l.w);
  *reinterpret_cast<uint4*>(hi) = h;
  *reinterpret_cast<uint4*>(lo) = l;
}

// Eight staged floats -> one 16-byte chunk of fp16 values (rounded to nearest).
__device__ __forceinline__ void round8(const float* src, __half* dst) {
  const float4 a = *reinterpret_cast<const float4*>(src), b = *reinterpret_cast<const float4*>(src + 4);
  const __half2 h[4] = {__floats2half2_rn(a.x, a.y), __floats2half2_rn(a.z, a.w), __floats2half2_rn(b.x, b.y),
                        __floats2half2_rn(b.z, b.w)};
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(h);
}

// Dims 8 c .. 8 c + 7 of position j's key and value of KV head h; zeros from `length` on (the cache's
// slots there may hold anything).
__device__ __forceinline__ void load_kv8(const PagedKvF32& kv, int j, int h, int c, int length, float4 (&k)[2], float4 (&v)[2]) {
  k[0] = k[1] = v[0] = v[1] = make_float4(0.f, 0.f, 0.f, 0.f);
  if (j >= length) return;
  const size_t at = ((size_t(kv.block_table[j / kv.block_size]) * kv.n_kv_heads + h) * kv.block_size + j % kv.block_size) * kv.head_dim + 8 * c;
  k[0] = *reinterpret_cast<const float4*>(kv.k + at);
  k[1] = *reinterpret_cast<const float4*>(kv.k + at + 4);
  v[0] = *reinterpret_cast<const float4*>(kv.v + at);
  v[1] = *reinterpret_cast<const float4*>(kv.v + at + 4);
}

// The keys [from, end) of every KV head as fp16 planes, plain rows: kv16 [n_kv][planes(P)][stride][D];
// positions from `length` on are zeros.
template <PrefillPrecision P>
__global__ void split_kv_kernel(const PagedKvF32 kv, const int length, const int from, const int end, const int stride,
                                __half* __restrict__ kv16) {
  grid_dependency_wait();
  const int D = kv.head_dim, chunks = D / 8, count = end - from;
  const size_t total = size_t(kv.n_kv_heads) * count * chunks;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const int c = int(i % chunks), j = from + int(i / chunks % count), h = int(i / chunks / count);
    float4 k[2], v[2];
    load_kv8(kv, j, h, c, length, k, v);
    const size_t plane = size_t(stride) * D, row = size_t(h) * planes(P) * plane + size_t(j) * D + 8 * c;
    if constexpr (P == PrefillPrecision::Float32) {
      split8(reinterpret_cast<const float*>(k), kv16 + row, kv16 + row + plane);
      split8(reinterpret_cast<const float*>(v), kv16 + row + 2 * plane, kv16 + row + 3 * plane);
    } else {
      round8(reinterpret_cast<const float*>(k), kv16 + row);
      round8(reinterpret_cast<const float*>(v), kv16 + row + plane);
    }
  }
}

// For the wgmma kernel: the keys [from, end) (whole tiles) as 64-key tiles in wgmma's K-major layout
// (wgmma.cuh), the planes of a tile together: kv16 [n_kv][stride / 64 tiles][K (hi, lo): 64 keys x D][V^T (hi, lo): D x 64 keys]
// (Float32: hi and lo planes; Half: one of each). In K, core matrix (key group, dim group c) lies at
// (key group) 8 D + 64 c halves; in V^T, core matrix (dim group c, key group) at 512 c + 64 (key
// group). A thread converts 8 keys x 8 dims of K and V: one core matrix of each plane.
template <PrefillPrecision P>
__global__ void tile_kv_kernel(const PagedKvF32 kv, const int length, const int from, const int end, const int stride,
                               __half* __restrict__ kv16) {
  grid_dependency_wait();
  constexpr bool kSplit = P == PrefillPrecision::Float32;
  constexpr int kPlanes = planes(P);
  const int D = kv.head_dim, chunks = D / 8, groups = (end - from) / 8;
  const int plane = 64 * D;  // halves of one plane of a tile
  const size_t total = size_t(kv.n_kv_heads) * groups * chunks;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const int c = int(i % chunks), j8 = from / 8 + int(i / chunks % groups), h = int(i / chunks / groups);
    __half* tile = kv16 + (size_t(h) * stride + size_t(j8 / 8) * 64) * kPlanes * D;
    __half* k_core = tile + (j8 % 8) * 8 * D + 64 * c;
    __half* v_core = tile + (kPlanes / 2) * plane + 512 * c + 64 * (j8 % 8);
    float vf[8][8];  // [key][dim]
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      float4 k[2], v[2];
      load_kv8(kv, 8 * j8 + r, h, c, length, k, v);
      if constexpr (kSplit) split8(reinterpret_cast<const float*>(k), k_core + 8 * r, k_core + plane + 8 * r);
      else round8(reinterpret_cast<const float*>(k), k_core + 8 * r);
#pragma unroll
      for (int d = 0; d < 8; ++d) vf[r][d] = reinterpret_cast<const float*>(v)[d];
    }
#pragma unroll
    for (int d = 0; d < 8; ++d) {
      __align__(16) float row[8];
#pragma unroll
      for (int r = 0; r < 8; ++r) row[r] = vf[r][d];
      if constexpr (kSplit) split8(row, v_core + 8 * d, v_core + plane + 8 * d);
      else round8(row, v_core + 8 * d);
    }
  }
}

// One CTA: query tokens [blockIdx.x * tokens_per_tile, +tokens_per_tile) × the `group` query heads
// of KV head blockIdx.y as rows (row r: token r / group, head r % group), key tiles
// [blockIdx.z * split_tiles, +split_tiles) of those the rows see. Warp w owns rows 16 w .. 16 w + 15;
// lane 4 g + q holds rows 16 w + g and + 8 of the MMA fragments. fp16 tiles are [key][D] with
// 16-byte chunks XOR-swizzled by (key & 7), so ldmatrix is conflict-free. Scores in log2 units.
// Without a split (part_o null) writes out; else the unnormalised partial part_o [split][n * n_heads][D]
// and (max, sum) part_ml [split][n * n_heads][2].
// head_dim 128: one CTA an SM (its shared memory allows no more) stated, so ptxas may take up to 255
// registers; left to itself it took 176 for Half and stalled the MMA chains (1024 queries at 128K: 3.2
// ms against 2.76). 0: head_dim 64 as ptxas chooses.
// kWgmma (sm_90a code on Hopper): Q.K^T and P.V as warpgroup MMAs (wgmma.cuh), warps 0-3 and 4-7 being
// two warpgroups of 64 rows, from 64-key tiles that tile_kv_kernel laid out (copied as they are); Half
// runs them software-pipelined, Float32 (whose three products leave no registers for that) in order;
// the softmax is the same.
template <int D, PrefillPrecision P, bool kWgmma>
__global__ void __launch_bounds__(threads(kWgmma), D == 128 || kWgmma ? 1 : 0)
    prefill_attention_kernel(const __half* __restrict__ kv16, const int stride, const int pos0, const int n, const int n_heads, const int group,
                             const int tokens_per_tile, const float scale_log2, const int split_tiles,
                             const float* __restrict__ q, float* __restrict__ out, float* __restrict__ part_o,
                             float* __restrict__ part_ml) {
  constexpr bool kSplit = P == PrefillPrecision::Float32;
  constexpr int kPlanes = planes(P);
  constexpr int kKeys = keys_per_tile(P, kWgmma);
  constexpr int kTile = Smem<D, P, kWgmma>::tile;
  constexpr int kSteps = D / 16;  // k-steps of Q.K^T; also pairs of 8-dim n-tiles of P.V
  constexpr int kChunks = D / 8;  // 16-byte fp16 chunks in a row
  static_assert(kChunks >= 8 && kSteps % 2 == 0, "head_dim must be 64 or 128");

  extern __shared__ __align__(16) unsigned char smem[];
  __half* tiles = reinterpret_cast<__half*>(smem);  // [stage][plane][kKeys][D], swizzled

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, quad = lane & 3;
  const int kvh = blockIdx.y, split = blockIdx.z;
  const int tile_first = blockIdx.x * tokens_per_tile;
  const int tile_tokens = min(tokens_per_tile, n - tile_first);
  const int valid_rows = tile_tokens * group;
  const int key_end = pos0 + tile_first + tile_tokens;  // the rows see keys [0, key_end)
  const int min_pos = pos0 + tile_first;                // the first row's position
  const int first_tile = split * split_tiles;
  const int end_tile = min(first_tile + split_tiles, (key_end + kKeys - 1) / kKeys);
  const __half* src = kv16 + size_t(kvh) * kPlanes * stride * D;  // this KV head's planes or tiles

  // On wgmma, thread 0 of warpgroup 2 bulk-copies the tiles into the stages; full[] says a stage has
  // landed, empty[] that both warpgroups' P.V are done with it.
  constexpr int kStages = stages(P, kWgmma);
  __shared__ uint64_t full[kWgmma ? kStages : 1], empty[kWgmma ? kStages : 1];
  if constexpr (kWgmma) {
    if (threadIdx.x == 0) stage_ring_init(full, empty, kStages, kWarps * 32);
    __syncthreads();
    if (producer_warp(warp, kWarps)) {
      set_max_registers<false, 24>();
      grid_dependency_wait();
      if (threadIdx.x == kWarps * 32) {
        constexpr unsigned kBytes = kPlanes * kTile * sizeof(__half);
        for (int tile = first_tile; tile < end_tile; ++tile) {
          const int buf = (tile - first_tile) % kStages, round = (tile - first_tile) / kStages;
          if (round > 0) mbarrier_wait(&empty[buf], (round - 1) & 1);
          bulk_copy_to_shared(tiles + buf * kPlanes * kTile, src + size_t(tile) * kPlanes * kTile, kBytes, &full[buf]);
        }
      }
      return;
    }
    set_max_registers<true, 240>();
  }

  // This lane's rows g and g + 8; padding rows repeat the last real row (finite, never written).
  int row_pos[2];
  int row_at[2];  // offset of the row in q / out (< 2^31: n * n_heads * D floats)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = min(warp * 16 + g + 8 * r, valid_rows - 1);
    const int token = tile_first + row / group;
    row_pos[r] = pos0 + token;
    row_at[r] = (token * n_heads + kvh * group + row % group) * D;
  }
  grid_dependency_wait();

  // Q as A fragments: hi and lo halves (Float32; lo unused for Half), unscaled: the scale is applied
  // to the fp32 scores.
  unsigned qa_hi[kSteps][4], qa_lo[kSplit ? kSteps : 1][4];
#pragma unroll
  for (int k = 0; k < kSteps; ++k)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 x = *reinterpret_cast<const float2*>(q + row_at[i & 1] + 16 * k + 8 * (i >> 1) + 2 * quad);
      if constexpr (kSplit) {
        split_half2(x.x, x.y, qa_hi[k][i], qa_lo[k][i]);
      } else {
        const __half2 h = __floats2half2_rn(x.x, x.y);
        qa_hi[k][i] = *reinterpret_cast<const unsigned*>(&h);
      }
    }

  // Key tile -> fp16 tiles of one stage (cp.async; a commit group per call, empty when past the end).
  // A thread copies chunk threadIdx % kChunks of keys threadIdx / kChunks + kRowsPerPass r of each
  // plane: fixed offsets from the tile's start (the swizzle's key & 7 is the same in every pass).
  constexpr int kRowsPerPass = kWarps * 32 / kChunks;
  static_assert(kRowsPerPass % 8 == 0 && kKeys % kRowsPerPass == 0, "a stage is whole passes of whole rows");
  const int src_at = threadIdx.x / kChunks * D + 8 * (threadIdx.x % kChunks);
  const int dst_at = threadIdx.x / kChunks * D + 8 * ((threadIdx.x % kChunks) ^ (threadIdx.x / kChunks & 7));
  const size_t plane_halves = size_t(stride) * D;
  auto stage = [&](int tile, int buf) {
    if (tile < end_tile) {
#pragma unroll
      for (int plane = 0; plane < kPlanes; ++plane) {
        const __half* from = src + plane * plane_halves + size_t(tile) * kKeys * D + src_at;
        __half* to = tiles + (buf * kPlanes + plane) * kTile + dst_at;
#pragma unroll
        for (int r = 0; r < kKeys / kRowsPerPass; ++r) cp_async16(to + r * kRowsPerPass * D, from + r * kRowsPerPass * D);
      }
    }
    cp_async_commit();
  };

  // ldmatrix's row addresses in a stage's plane (halves): t * D + 8 (c ^ (t & 7)) for key t and
  // chunk c. With t & 7 = lane & 7 the XOR splits into a per-lane base and a compile-time offset:
  // Q.K^T's (c = 4 k2 + lane / 8) 8 n8 D + 32 k2 from the base of k2's parity; P.V's (c = 2 np +
  // lane / 16) 16 k D + 16 (np & ~3) from the base of np & 3.
  const int y = lane & 7;
  const int k_row = y * D + 8 * ((lane >> 3) ^ (y & 3));
  const int k_base[2] = {k_row + 32 * (y >> 2), k_row - 32 * (y >> 2)};
  int v_base[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) v_base[j] = (((lane >> 3) & 1) * 8 + y) * D + 16 * (j ^ (y >> 1)) + 8 * ((lane >> 4) ^ (y & 1));

  float m_run[2] = {kNegBig, kNegBig};  // per row: the max (log2 units)
  // Per row the sum of the probabilities (times kPScale). Float32: as P.V multiplies them (hi + lo), by
  // MMAs with a ones column: C fragment, [0] and [1] row g, [2] and [3] row g + 8, the row's whole sum.
  // Half: float adds of this lane's probabilities into [0] (row g) and [2] (row g + 8), the quad's
  // parts added at the end: an MMA on the tensor cores would wait behind the running wgmmas (ncu:
  // 8.5 % of the kernel's stall samples on it), and fp16's rounding of P is within Half's tolerance.
  float l_sum[4] = {};
  constexpr unsigned kOnes = 0x3C003C00u;  // two fp16 1.0
  float acc[2 * kSteps][4];  // O: 8-dim n-tiles; [0, 1] row g, dims 8 n + 2 quad (+1); [2, 3] row g + 8
#pragma unroll
  for (int n8 = 0; n8 < 2 * kSteps; ++n8)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n8][e] = 0.f;
  // S = Q.K^T of a tile: n-tiles of 8 keys; sc[n8][0, 1] = row g, keys 8 n8 + 2 quad (+1); [2, 3] row g + 8.
  // Then the probabilities (Float32: times kPScale after exp2; Half: with it).
  float sc[kKeys / 8][4];
  // P as A fragments for P.V (k-steps of 16 keys; n-tiles 2 k and 2 k + 1 of sc): fp16, or hi + lo.
  unsigned ph[kKeys / 16][4], pl[kSplit ? kKeys / 16 : 1][4];

  // Causal mask (only where some key may lie past some row), then the rows' new max; alpha: the
  // factor what was summed so far takes. Float32 scales the scores first; Half folds the scale (and
  // the probabilities' kPScale) into exp2's argument, one fma an element: the max of the raw scores
  // times the positive scale is the max of the scaled ones, since rounding is monotone. Returns
  // whether some row of this lane's grew.
  auto new_max = [&](int tile, float (&alpha)[2]) {
    const int key0 = tile * kKeys;
    const bool needs_mask = key0 + kKeys - 1 > min_pos;
#pragma unroll
    for (int n8 = 0; n8 < kKeys / 8; ++n8)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if constexpr (kSplit) sc[n8][e] *= scale_log2;
        if (needs_mask && key0 + 8 * n8 + 2 * quad + (e & 1) > row_pos[e >> 1]) sc[n8][e] = -INFINITY;
      }
    bool grew = false;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float m_blk = -INFINITY;
#pragma unroll
      for (int n8 = 0; n8 < kKeys / 8; ++n8) m_blk = fmaxf(m_blk, fmaxf(sc[n8][2 * r], sc[n8][2 * r + 1]));
      m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 1));
      m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 2));
      if constexpr (!kSplit) m_blk *= scale_log2;
      const float m_new = fmaxf(m_run[r], m_blk);
      grew |= m_new > m_run[r];
      alpha[r] = exp2_ftz(m_run[r] - m_new);
      m_run[r] = m_new;
    }
    return grew;
  };
  // The rows whose max grew rescale what they summed so far; a warp where none did skips O's (every
  // factor would be exp2(0) = 1), as most tiles past the first few do. In two parts, the sums and O:
  // the pipelined Half loop rescales O a tile later.
  auto rescale_sums = [&](const float (&alpha)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) l_sum[2 * r] *= alpha[r], l_sum[2 * r + 1] *= alpha[r];
  };
  auto rescale_acc = [&](bool grew, const float (&alpha)[2]) {
    if (__any_sync(0xffffffffu, grew)) {
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int n8 = 0; n8 < 2 * kSteps; ++n8) {
          acc[n8][2 * r] *= alpha[r];
          acc[n8][2 * r + 1] *= alpha[r];
        }
    }
  };
  auto rescale = [&](bool grew, const float (&alpha)[2]) {
    rescale_sums(alpha);
    rescale_acc(grew, alpha);
  };
  auto exponentiate = [&] {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float bias = float(kPScaleLog2) - m_run[r];  // Half: p · kPScale
#pragma unroll
      for (int n8 = 0; n8 < kKeys / 8; ++n8)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          if constexpr (kSplit) sc[n8][e] = exp2_ftz(sc[n8][e] - m_run[r]);
          else sc[n8][e] = exp2_ftz(fmaf(sc[n8][e], scale_log2, bias));
        }
    }
  };
  // P's fragments from sc, and their sums into l_sum (Float32: from zero, then a float add, as its P.V).
  auto take_p = [&] {
#pragma unroll
    for (int k = 0; k < kKeys / 16; ++k)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float* s = sc[2 * k + (i >> 1)] + 2 * (i & 1);
        if constexpr (kSplit) {
          split_half2(s[0] * kPScale, s[1] * kPScale, ph[k][i], pl[k][i]);
        } else {  // already scaled by kPScale
          const __half2 h = __floats2half2_rn(s[0], s[1]);
          ph[k][i] = *reinterpret_cast<const unsigned*>(&h);
        }
      }
    if constexpr (kSplit) {
      float part[4] = {};
#pragma unroll
      for (int k = 0; k < kKeys / 16; ++k) {
        mma_f16(part, pl[k], kOnes, kOnes);
        mma_f16(part, ph[k], kOnes, kOnes);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) l_sum[e] += part[e];
    } else {
#pragma unroll
      for (int n8 = 0; n8 < kKeys / 8; ++n8) {
        l_sum[0] += sc[n8][0] + sc[n8][1];
        l_sum[2] += sc[n8][2] + sc[n8][3];
      }
    }
  };

  // Q.K^T and P.V as wgmmas (Float32: three products each, P.V's from zero into `part`).
  // (Instantiated for the mma.sync kernel too, whose kKeys no wgmma shape takes: hence the guards.)
  auto qk_wgmma = [&](const __half* k_hi, const __half* k_lo) {
    if constexpr (kWgmma) {
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        wgmma_m64k16<kKeys>(sc, qa_hi[s], wgmma_step(k_hi, s, 16 * D), s > 0);
        if constexpr (kSplit) {
          wgmma_m64k16<kKeys>(sc, qa_lo[s], wgmma_step(k_hi, s, 16 * D), true);
          wgmma_m64k16<kKeys>(sc, qa_hi[s], wgmma_step(k_lo, s, 16 * D), true);
        }
      }
    }
  };
  auto pv_wgmma = [&](float (&o)[2 * kSteps][4], const __half* v_hi, const __half* v_lo) {
    if constexpr (kWgmma) {
#pragma unroll
      for (int k = 0; k < kKeys / 16; ++k) {
        if constexpr (kSplit) {
          wgmma_m64k16<D>(o, pl[k], wgmma_step(v_hi, k, 16 * kKeys), k > 0);
          wgmma_m64k16<D>(o, ph[k], wgmma_step(v_lo, k, 16 * kKeys), true);
        }
        wgmma_m64k16<D>(o, ph[k], wgmma_step(v_hi, k, 16 * kKeys), true);
      }
    }
  };

  constexpr int kVPlane = kPlanes / 2 * kTile;  // V^T (hi)'s offset in a stage
  if constexpr (kWgmma && kSplit) {
    // Float32, in order (its three products leave no registers for Half's pipelining): Q.K^T, the
    // softmax, P.V from zero into `part`, then the stage goes back to the producer and a float add.
    for (int tile = first_tile; tile < end_tile; ++tile) {
      const unsigned buf = unsigned(tile - first_tile) % kStages;
      mbarrier_wait(&full[buf], unsigned(tile - first_tile) / kStages & 1);
      const __half* k_tile = tiles + buf * kPlanes * kTile;
      wgmma_fence();
      qk_wgmma(k_tile, k_tile + kTile);
      wgmma_commit();
      wgmma_wait<0>();
      float alpha[2];
      const bool grew = new_max(tile, alpha);
      rescale(grew, alpha);
      exponentiate();
      take_p();
      float part[2 * kSteps][4];
      wgmma_fence();
      pv_wgmma(part, k_tile + kVPlane, k_tile + kVPlane + kTile);
      wgmma_commit();
      wgmma_wait<0>();
      mbarrier_arrive(&empty[buf]);
#pragma unroll
      for (int n8 = 0; n8 < 2 * kSteps; ++n8)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[n8][e] += part[n8][e];
    }
  } else if constexpr (kWgmma) {
    // Half, software-pipelined over the tiles: tile t's Q.K^T and tile t - 1's P.V are issued together,
    // and t's softmax runs while P.V still does; then tile t - 1's stage goes back to the producer.
    // As FA3 orders it, O takes tile t - 1's rescaling at tile t, between the two issues (while Q.K^T
    // runs), not after P.V's wait: 32K's attention 175 -> 165-170 ms (bench/gpu/NOTES.md, session 20).
    if (first_tile < end_tile) {
      float alpha[2] = {1.f, 1.f};
      bool grew = false;
      for (int tile = first_tile; tile < end_tile; ++tile) {
        const unsigned buf = unsigned(tile - first_tile) % kStages, prev = (buf + kStages - 1) % kStages;
        mbarrier_wait(&full[buf], unsigned(tile - first_tile) / kStages & 1);
        const __half* k_tile = tiles + buf * kPlanes * kTile;
        const __half* v_prev = tiles + prev * kPlanes * kTile + kVPlane;
        wgmma_fence();
        qk_wgmma(k_tile, nullptr);
        wgmma_commit();
        if (tile > first_tile) {
          rescale_acc(grew, alpha);
          wgmma_fence();
          pv_wgmma(acc, v_prev, nullptr);
          wgmma_commit();
          wgmma_wait<1>();
        } else {
          wgmma_wait<0>();
        }
        grew = new_max(tile, alpha);
        rescale_sums(alpha);
        exponentiate();
        wgmma_wait<0>();
        if (tile > first_tile) mbarrier_arrive(&empty[prev]);
        take_p();
      }
      rescale_acc(grew, alpha);
      const unsigned last = unsigned(end_tile - 1 - first_tile) % kStages;
      wgmma_fence();
      pv_wgmma(acc, tiles + last * kPlanes * kTile + kVPlane, nullptr);
      wgmma_commit();
      wgmma_wait<0>();
    }
  } else {
    for (int i = 0; i < kStages - 1; ++i) stage(first_tile + i, i);
    for (int tile = first_tile; tile < end_tile; ++tile) {
      const unsigned buf = unsigned(tile - first_tile) % kStages;
      // the stage refilled here was last read before the previous iteration's closing barrier
      stage(tile + kStages - 1, (buf + kStages - 1) % kStages);
      cp_async_wait<kStages - 1>();
      __syncthreads();  // this tile's stage is complete for every thread
      // Planes of this stage: Float32 K hi, K lo, V hi, V lo; Half K, V (k_lo, v_lo unused).
      const __half* k_hi = tiles + buf * kPlanes * kTile;
      const __half* k_lo = k_hi + kTile;
      const __half* v_hi = k_hi + (kPlanes / 2) * kTile;
      const __half* v_lo = v_hi + kTile;

#pragma unroll
      for (int n8 = 0; n8 < kKeys / 8; ++n8)
#pragma unroll
        for (int e = 0; e < 4; ++e) sc[n8][e] = 0.f;
#pragma unroll
      for (int k2 = 0; k2 < kSteps / 2; ++k2) {
#pragma unroll
        for (int n8 = 0; n8 < kKeys / 8; ++n8) {
          const int at = k_base[k2 & 1] + 8 * n8 * D + 32 * k2;
          unsigned bh[4];  // chunks 4 k2 .. 4 k2 + 3 of keys 8 n8 ..: k-steps 2 k2 and 2 k2 + 1
          ldmatrix_x4(bh, k_hi + at);
          if constexpr (kSplit) {
            unsigned bl[4];
            ldmatrix_x4(bl, k_lo + at);
            mma_f16(sc[n8], qa_hi[2 * k2], bh[0], bh[1]);
            mma_f16(sc[n8], qa_lo[2 * k2], bh[0], bh[1]);
            mma_f16(sc[n8], qa_hi[2 * k2], bl[0], bl[1]);
            mma_f16(sc[n8], qa_hi[2 * k2 + 1], bh[2], bh[3]);
            mma_f16(sc[n8], qa_lo[2 * k2 + 1], bh[2], bh[3]);
            mma_f16(sc[n8], qa_hi[2 * k2 + 1], bl[2], bl[3]);
          } else {
            mma_f16(sc[n8], qa_hi[2 * k2], bh[0], bh[1]);
            mma_f16(sc[n8], qa_hi[2 * k2 + 1], bh[2], bh[3]);
          }
        }
      }
      float alpha[2];
      const bool grew = new_max(tile, alpha);
      rescale(grew, alpha);
      exponentiate();
      take_p();

      // O += P.V: k-steps of 16 keys; P's C fragments are the A fragments (n-tiles 2 k and 2 k + 1).
      // V via ldmatrix.trans: b0, b1 of dims 8 n .. for two 8-dim n-tiles at once. The tensor cores
      // truncate what they add into an accumulator (an error growing with the keys summed), so with
      // Float32 each tile's products start from zero and float32 adds (rounded) carry them into acc;
      // Half, whose operands are rounded anyway, adds into acc directly.
#pragma unroll
      for (int np = 0; np < kSteps; ++np) {
        float part[2][4] = {};
        float (&sum0)[4] = kSplit ? part[0] : acc[2 * np];
        float (&sum1)[4] = kSplit ? part[1] : acc[2 * np + 1];
#pragma unroll
        for (int k = 0; k < kKeys / 16; ++k) {
          const int at = v_base[np & 3] + 16 * k * D + 16 * (np & ~3);
          unsigned bh[4];
          ldmatrix_x4_trans(bh, v_hi + at);
          if constexpr (kSplit) {
            unsigned bl[4];
            ldmatrix_x4_trans(bl, v_lo + at);
            mma_f16(sum0, pl[k], bh[0], bh[1]);
            mma_f16(sum0, ph[k], bl[0], bl[1]);
            mma_f16(sum0, ph[k], bh[0], bh[1]);
            mma_f16(sum1, pl[k], bh[2], bh[3]);
            mma_f16(sum1, ph[k], bl[2], bl[3]);
            mma_f16(sum1, ph[k], bh[2], bh[3]);
          } else {
            mma_f16(sum0, ph[k], bh[0], bh[1]);
            mma_f16(sum1, ph[k], bh[2], bh[3]);
          }
        }
        if constexpr (kSplit) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            acc[2 * np][e] += part[0][e];
            acc[2 * np + 1][e] += part[1][e];
          }
        }
      }
      __syncthreads();  // every warp is done with this stage before it is refilled
    }
  }
  cp_async_wait<0>();
  if constexpr (!kSplit) {  // the quad's parts of each row's sum
#pragma unroll
    for (int e = 0; e < 4; e += 2) {
      l_sum[e] += __shfl_xor_sync(0xffffffffu, l_sum[e], 1);
      l_sum[e] += __shfl_xor_sync(0xffffffffu, l_sum[e], 2);
    }
  }

  const size_t rows = size_t(n) * n_heads;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (warp * 16 + g + 8 * r >= valid_rows) continue;
    const float inv = part_o ? 1.f / kPScale : 1.f / l_sum[2 * r];  // the whole row's sum, in every lane of the quad
    float* dst = part_o ? part_o + split * rows * D + row_at[r] : out + row_at[r];
#pragma unroll
    for (int n8 = 0; n8 < 2 * kSteps; ++n8)
      *reinterpret_cast<float2*>(dst + 8 * n8 + 2 * quad) = make_float2(acc[n8][2 * r] * inv, acc[n8][2 * r + 1] * inv);
    if (part_o && quad == 0) {
      float* ml = part_ml + (split * rows + row_at[r] / D) * 2;
      ml[0] = m_run[r];
      ml[1] = l_sum[2 * r] * (1.f / kPScale);
    }
  }
}

// One CTA per (token, head) row: out = Σ_s o_s 2^(m_s - M) / Σ_s l_s 2^(m_s - M).
__global__ void prefill_attention_combine(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                                          const int splits, const int head_dim, float* __restrict__ out) {
  grid_dependency_wait();
  const size_t row = blockIdx.x, rows = gridDim.x;
  float m = kNegBig;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, part_ml[(s * rows + row) * 2]);
  float total = 0.f;
  for (int s = 0; s < splits; ++s) total += part_ml[(s * rows + row) * 2 + 1] * exp2f(part_ml[(s * rows + row) * 2] - m);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < splits; ++s) o += part_o[(s * rows + row) * head_dim + d] * exp2f(part_ml[(s * rows + row) * 2] - m);
    out[row * head_dim + d] = o / total;
  }
}

// CTAs of the kernel that fit on one SM (shared memory and registers), queried once.
template <int D, PrefillPrecision P, bool W>
int resident_ctas() {
  static const int count = [] {
    auto kernel = prefill_attention_kernel<D, P, W>;
    RL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Smem<D, P, W>::bytes)));
    int n = 0;
    RL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads(W), Smem<D, P, W>::bytes));
    if (n < 1) throw std::runtime_error("prefill attention kernel does not fit on this GPU");
    return n;
  }();
  return count;
}

template <PrefillPrecision P, bool W>
int resident_ctas(int head_dim) { return head_dim == 64 ? resident_ctas<64, P, W>() : resident_ctas<128, P, W>(); }

// Half takes the wgmma kernel where the GPU and the loaded code have it; REPO_LENS_CUDA_WGMMA=0 keeps
// the mma.sync kernel (A/B, diagnosis).
bool use_wgmma() {
  static const bool wanted = switched_on("REPO_LENS_CUDA_WGMMA") && wgmma_available();
  return wanted;
}

struct Plan {
  bool wgmma;
  int tokens_per_tile, query_tiles, splits, split_tiles;
  int padded;  // keys converted to fp16 planes: whole key tiles
  int planes;
  // Workspace: the fp16 keys and values (unless kept apart: PrefillKvTiles), then (split) the partial
  // outputs and (max, sum) pairs.
  size_t kv16_floats(const PagedKvF32& kv) const { return size_t(kv.n_kv_heads) * planes / 2 * padded * kv.head_dim; }
  size_t floats(const PagedKvF32& kv, size_t rows, bool tiles_apart) const {
    return (tiles_apart ? 0 : kv16_floats(kv)) + (splits == 1 ? 0 : size_t(splits) * rows * (kv.head_dim + 2));
  }
};

// Query tiles of kRows / group tokens; the keys split over CTAs (at least kMinTilesPerSplit key tiles
// a share) so that the CTAs fill the GPU's resident slots in whole waves: the fewest shares whose
// last wave is at least 90% full, else the best filled.
Plan plan(const PagedKvF32& kv, int pos0, int n, int n_heads, PrefillPrecision precision) {
  Plan p;
  p.wgmma = use_wgmma();
  p.planes = planes(precision);
  const int group = n_heads / kv.n_kv_heads;
  p.tokens_per_tile = kRows / group;
  p.query_tiles = (n + p.tokens_per_tile - 1) / p.tokens_per_tile;
  const int base = p.query_tiles * kv.n_kv_heads;
  const int keys = keys_per_tile(precision, p.wgmma);
  const int key_tiles = (pos0 + n + keys - 1) / keys;
  static const int sms = multiprocessor_count();
  const bool half = precision == PrefillPrecision::Half;
  const int slots = sms * (half ? (p.wgmma ? resident_ctas<PrefillPrecision::Half, true>(kv.head_dim)
                                           : resident_ctas<PrefillPrecision::Half, false>(kv.head_dim))
                                : (p.wgmma ? resident_ctas<PrefillPrecision::Float32, true>(kv.head_dim)
                                           : resident_ctas<PrefillPrecision::Float32, false>(kv.head_dim)));
  const int most = std::max(1, std::min(key_tiles / kMinTilesPerSplit, kMaxSplits));
  int splits = 1;
  double best = 0;
  for (int s = 1; s <= most; ++s) {
    const long ctas = long(base) * s, waves = (ctas + slots - 1) / slots;
    const double filled = double(ctas) / double(waves * slots);
    if (filled > best + 1e-9) {
      best = filled;
      splits = s;
    }
    if (filled >= 0.9) break;
  }
  p.split_tiles = (key_tiles + splits - 1) / splits;
  p.padded = key_tiles * keys;
  p.splits = (key_tiles + p.split_tiles - 1) / p.split_tiles;
  return p;
}

template <PrefillPrecision P, bool W>
void launch(const PagedKvF32& kv, const Plan& p, int pos0, int n, int n_heads, float scale, const float* q, float* out,
            float* workspace, const PrefillKvTiles* kept, cudaStream_t stream) {
  const size_t rows = size_t(n) * n_heads;
  __half* kv16 = kept ? kept->kv16 : reinterpret_cast<__half*>(workspace);
  const int stride = kept ? kept->stride : p.padded;
  const int keys = keys_per_tile(P, W), from = kept ? std::min(kept->from, pos0) / keys * keys : 0;
  float* part_o = p.splits > 1 ? workspace + (kept ? 0 : p.kv16_floats(kv)) : nullptr;
  float* part_ml = p.splits > 1 ? part_o + size_t(p.splits) * rows * kv.head_dim : nullptr;
  static const int sms = multiprocessor_count();
  const size_t chunks = size_t(kv.n_kv_heads) * (p.padded - from) * (kv.head_dim / 8);
  const dim3 convert_grid(unsigned(std::min<size_t>((chunks + 255) / 256, size_t(sms) * 16)));
  if (W) {
    launch_chained("tile_kv_kernel", tile_kv_kernel<P>, dim3((convert_grid.x + 7) / 8), dim3(256), 0, stream, kv, pos0 + n, from, p.padded,
                   stride, kv16);
  } else {
    launch_chained("split_kv_kernel", split_kv_kernel<P>, convert_grid, dim3(256), 0, stream, kv, pos0 + n, from, p.padded, stride, kv16);
  }
  const float scale_log2 = scale * 1.4426950408889634f;
  const dim3 grid(p.query_tiles, kv.n_kv_heads, p.splits);
  const int group = n_heads / kv.n_kv_heads;
  if (kv.head_dim == 64) {
    launch_chained("prefill_attention_kernel", prefill_attention_kernel<64, P, W>, grid, dim3(threads(W)), Smem<64, P, W>::bytes,
                   stream, static_cast<const __half*>(kv16), stride, pos0, n, n_heads, group, p.tokens_per_tile, scale_log2,
                   p.split_tiles, q, out, part_o, part_ml);
  } else {
    launch_chained("prefill_attention_kernel", prefill_attention_kernel<128, P, W>, grid, dim3(threads(W)), Smem<128, P, W>::bytes,
                   stream, static_cast<const __half*>(kv16), stride, pos0, n, n_heads, group, p.tokens_per_tile, scale_log2,
                   p.split_tiles, q, out, part_o, part_ml);
  }
  if (p.splits > 1) {
    launch_chained("prefill_attention_combine", prefill_attention_combine, dim3(unsigned(rows)), dim3(kv.head_dim), 0,
                   stream, static_cast<const float*>(part_o), static_cast<const float*>(part_ml), p.splits,
                   kv.head_dim, out);
  }
}

}  // namespace

bool prefill_attention_supports(int head_dim, int n_heads, int n_kv_heads) {
  return (head_dim == 64 || head_dim == 128) && n_kv_heads > 0 && n_heads % n_kv_heads == 0 &&
         n_heads / n_kv_heads <= kRows;
}

size_t prefill_attention_workspace_floats(const PagedKvF32& kv, int pos0, int n, int n_heads, PrefillPrecision precision,
                                          bool tiles_apart) {
  if (n <= 0) return 0;
  return plan(kv, pos0, n, n_heads, precision).floats(kv, size_t(n) * n_heads, tiles_apart);
}

int prefill_kv_tiles_stride(int positions) { return (positions + 63) / 64 * 64; }

size_t prefill_kv_tiles_halves(int n_kv_heads, int head_dim, int stride, PrefillPrecision precision) {
  return size_t(n_kv_heads) * planes(precision) * stride * head_dim;
}

void prefill_attention(const PagedKvF32& kv, int pos0, int n, int n_heads, float scale, const float* q, float* out,
                       float* workspace, PrefillPrecision precision, cudaStream_t stream, const PrefillKvTiles* kept) {
  if (n <= 0) return;
  if (!prefill_attention_supports(kv.head_dim, n_heads, kv.n_kv_heads))
    throw std::runtime_error("prefill_attention: needs head_dim 64 or 128 and n_heads a multiple of n_kv_heads (group <= 64)");
  const Plan p = plan(kv, pos0, n, n_heads, precision);
  if (!workspace && p.floats(kv, size_t(n) * n_heads, kept != nullptr) > 0) throw std::runtime_error("prefill_attention: needs the workspace");
  if (kept && (kept->stride % 64 != 0 || kept->stride < p.padded)) throw std::runtime_error("prefill_attention: kept tiles too short");
  const bool half = precision == PrefillPrecision::Half;
  if (half && p.wgmma) launch<PrefillPrecision::Half, true>(kv, p, pos0, n, n_heads, scale, q, out, workspace, kept, stream);
  else if (half) launch<PrefillPrecision::Half, false>(kv, p, pos0, n, n_heads, scale, q, out, workspace, kept, stream);
  else if (p.wgmma) launch<PrefillPrecision::Float32, true>(kv, p, pos0, n, n_heads, scale, q, out, workspace, kept, stream);
  else launch<PrefillPrecision::Float32, false>(kv, p, pos0, n, n_heads, scale, q, out, workspace, kept, stream);
}

}  // namespace rl::cuda
