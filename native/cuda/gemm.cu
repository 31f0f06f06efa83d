#include "gemm.cuh"

#include <cstdint>
#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

// A CTA computes a tile of kBM tokens x kBN rows of W; its warps each a 32 x 64 tile (kBM / 32 x 2 warps).
// Each k-slice of kBK columns is staged in shared memory, two slices deep: W by cp.async, x through
// registers (loaded one slice ahead, split into hi and lo when stored). RL_GEMM_BM (64 or 128) and
// RL_GEMM_BK (32 or 64) are for A/B timing builds (bench/gpu/NOTES.md).
#ifndef RL_GEMM_BM
#define RL_GEMM_BM 64
#endif
#ifndef RL_GEMM_BK
#define RL_GEMM_BK 32
#endif
constexpr int kBM = RL_GEMM_BM, kBN = 128, kBK = RL_GEMM_BK;
constexpr int kWarpsM = kBM / 32, kWarpsN = 2, kThreads = kWarpsM * kWarpsN * 32;
constexpr int kWarpM = kBM / kWarpsM, kWarpN = kBN / kWarpsN;
constexpr int kMTiles = kWarpM / 16, kNTiles = kWarpN / 8;  // m16 and n8 mma tiles of a warp
constexpr int kLds = kBK + 8;  // 16-bit elements per shared row: 16 bytes of padding, so ldmatrix's 8 rows hit distinct banks
constexpr int kXLoads = kBM * kBK / 4 / kThreads;  // float4 loads of x per thread and slice
constexpr int kWLoads = kBN * kBK / 8 / kThreads;  // 16-byte copies of W per thread and slice
static_assert(kXLoads * 4 * kThreads == kBM * kBK && kWLoads * 8 * kThreads == kBN * kBK, "tile not covered");

#ifdef RL_GEMM_STAGES  // A/B: x copied as float32 by cp.async, RL_GEMM_STAGES slices deep; split when fragments are loaded
constexpr int kStages = RL_GEMM_STAGES;
struct Stage {
  float x[kBM][kBK + 8];  // 8 floats of padding: a half-warp's float2 fragment loads hit distinct banks
  uint16_t w[kBN][kLds];
};
#else
constexpr int kStages = 2;
struct Stage {
  uint16_t hi[kBM][kLds];  // x rounded to W's type
  uint16_t lo[kBM][kLds];  // x - hi, rounded
  uint16_t w[kBN][kLds];
};
#endif
constexpr int kSmemBytes = kStages * sizeof(Stage);

// W's element type: packing float pairs (hi and lo), and the mma instruction.
template <typename T>
struct Half;
template <>
struct Half<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float a, float b, float2& rounded) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    rounded = __bfloat1622float2(h);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <>
struct Half<__half> {
  static __device__ __forceinline__ uint32_t pack(float a, float b, float2& rounded) {
    const __half2 h = __floats2half2_rn(a, b);
    rounded = __half22float2(h);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// Four float32 -> hi (4 x 16 bits) and lo = x - hi (4 x 16 bits).
template <typename T>
__device__ __forceinline__ void split4(const float4& v, uint2& hi, uint2& lo) {
  float2 r01, r23, unused;
  hi.x = Half<T>::pack(v.x, v.y, r01);
  hi.y = Half<T>::pack(v.z, v.w, r23);
  lo.x = Half<T>::pack(v.x - r01.x, v.y - r01.y, unused);
  lo.y = Half<T>::pack(v.z - r23.x, v.w - r23.y, unused);
}

// Two float32 -> hi and lo = x - hi, each a pair in W's type.
template <typename T>
__device__ __forceinline__ void split2(const float2& v, uint32_t& hi, uint32_t& lo) {
  float2 r, unused;
  hi = Half<T>::pack(v.x, v.y, r);
  lo = Half<T>::pack(v.x - r.x, v.y - r.y, unused);
}

// 16 bytes global -> shared; zero-filled (nothing read) when !valid.
__device__ __forceinline__ void cp_async16_or_zero(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    gemm_kernel(const float* __restrict__ x, const int n, const T* __restrict__ w, const int rows, const int cols,
                const float* __restrict__ bias, float* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char smem[];
  Stage* stage = reinterpret_cast<Stage*>(smem);  // [kStages]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / kWarpsN, warp_n = warp % kWarpsN;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;  // first token, first row of W
  const int slices = (cols + kBK - 1) / kBK;

  auto load_w = [&](int s, int slice) {
#pragma unroll
    for (int i = 0; i < kWLoads; ++i) {
      const int idx = tid + i * kThreads, r = idx / (kBK / 8), c = idx % (kBK / 8) * 8;
      const int gr = n0 + r, gc = slice * kBK + c;
      const bool valid = gr < rows && gc < cols;
      cp_async16_or_zero(&stage[s].w[r][c], valid ? w + size_t(gr) * cols + gc : w, valid);
    }
  };
#ifdef RL_GEMM_STAGES
  auto copy_x = [&](int s, int slice) {
#pragma unroll
    for (int i = 0; i < kXLoads; ++i) {
      const int idx = tid + i * kThreads, r = idx / (kBK / 4), c = idx % (kBK / 4) * 4;
      const int gr = m0 + r, gc = slice * kBK + c;
      const bool valid = gr < n && gc < cols;
      cp_async16_or_zero(&stage[s].x[r][c], valid ? x + size_t(gr) * cols + gc : x, valid);
    }
  };
#else
  float4 xr[kXLoads];
  auto load_x = [&](int slice) {
#pragma unroll
    for (int i = 0; i < kXLoads; ++i) {
      const int idx = tid + i * kThreads, r = idx / (kBK / 4), c = idx % (kBK / 4) * 4;
      const int gr = m0 + r, gc = slice * kBK + c;
      xr[i] = gr < n && gc < cols ? __ldg(reinterpret_cast<const float4*>(x + size_t(gr) * cols + gc))
                                  : make_float4(0.f, 0.f, 0.f, 0.f);
    }
  };
  auto store_x = [&](int s) {
#pragma unroll
    for (int i = 0; i < kXLoads; ++i) {
      const int idx = tid + i * kThreads, r = idx / (kBK / 4), c = idx % (kBK / 4) * 4;
      uint2 hi, lo;
      split4<T>(xr[i], hi, lo);
      *reinterpret_cast<uint2*>(&stage[s].hi[r][c]) = hi;
      *reinterpret_cast<uint2*>(&stage[s].lo[r][c]) = lo;
    }
  };
#endif

  float acc[kMTiles][kNTiles][4] = {};
  auto compute = [&](int s) {
#pragma unroll
    for (int k16 = 0; k16 < kBK; k16 += 16) {
      uint32_t a_hi[kMTiles][4], a_lo[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#ifdef RL_GEMM_STAGES
        // m16k16 A fragment: a0 (row g, cols 2t, 2t+1), a1 row g+8, a2 cols + 8, a3 both (g = lane/4, t = lane%4)
        const int r = warp_m * kWarpM + mt * 16 + (lane >> 2), c = k16 + (lane & 3) * 2;
        split2<T>(*reinterpret_cast<const float2*>(&stage[s].x[r][c]), a_hi[mt][0], a_lo[mt][0]);
        split2<T>(*reinterpret_cast<const float2*>(&stage[s].x[r + 8][c]), a_hi[mt][1], a_lo[mt][1]);
        split2<T>(*reinterpret_cast<const float2*>(&stage[s].x[r][c + 8]), a_hi[mt][2], a_lo[mt][2]);
        split2<T>(*reinterpret_cast<const float2*>(&stage[s].x[r + 8][c + 8]), a_hi[mt][3], a_lo[mt][3]);
#else
        const int r = warp_m * kWarpM + mt * 16 + (lane & 15), c = k16 + (lane >> 4) * 8;
        ldmatrix_x4(a_hi[mt], &stage[s].hi[r][c]);
        ldmatrix_x4(a_lo[mt], &stage[s].lo[r][c]);
#endif
      }
#pragma unroll
      for (int np = 0; np < kNTiles / 2; ++np) {  // two n8 tiles per ldmatrix.x4
        uint32_t b[4];
        const int r = warp_n * kWarpN + np * 16 + (lane & 7) + (lane >> 4) * 8, c = k16 + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(b, &stage[s].w[r][c]);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          Half<T>::mma(acc[mt][2 * np], a_lo[mt], b[0], b[1]);
          Half<T>::mma(acc[mt][2 * np], a_hi[mt], b[0], b[1]);
          Half<T>::mma(acc[mt][2 * np + 1], a_lo[mt], b[2], b[3]);
          Half<T>::mma(acc[mt][2 * np + 1], a_hi[mt], b[2], b[3]);
        }
      }
    }
  };

#ifdef RL_GEMM_STAGES
  // Group i holds slice i's copies (group 0 also the weights of slices 1..kStages-2, issued before
  // waiting for the previous kernel, on which they do not depend).
  for (int i = 0; i < kStages - 1; ++i) if (i < slices) load_w(i, i);
  grid_dependency_wait();
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < slices) copy_x(i, i);
    cp_async_commit();
  }
  for (int slice = 0; slice < slices; ++slice) {
    cp_async_wait<kStages - 2>();  // slice's group has landed (this thread's copies) ...
    __syncthreads();               // ... and everyone's; the stage refilled next was last read before this barrier
    const int next = slice + kStages - 1;
    if (next < slices) {
      load_w(next % kStages, next);
      copy_x(next % kStages, next);
    }
    cp_async_commit();
    compute(slice % kStages);
  }
#else
  load_w(0, 0);  // weights do not depend on the previous kernel: fetch before waiting for it
  cp_async_commit();
  grid_dependency_wait();
  load_x(0);
  store_x(0);
  cp_async_wait<0>();
  __syncthreads();
  for (int slice = 0; slice < slices; ++slice) {
    const int s = slice & 1;
    const bool more = slice + 1 < slices;
    if (more) {  // the other stage was last read before the barrier that ended the previous slice
      load_w(s ^ 1, slice + 1);
      cp_async_commit();
      load_x(slice + 1);
    }
    compute(s);
    if (more) store_x(s ^ 1);
    cp_async_wait<0>();
    __syncthreads();
  }
#endif

  // Accumulator layout (m16n8): c0, c1 at (lane / 4, 2 * (lane % 4) + {0, 1}); c2, c3 eight tokens down.
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt) {
    const int col = n0 + warp_n * kWarpN + nt * 8 + (lane & 3) * 2;
    if (col >= rows) continue;  // rows is a multiple of 8: an n8 tile is all in or all out
    const float2 b = bias ? make_float2(bias[col], bias[col + 1]) : make_float2(0.f, 0.f);
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
      const int token = m0 + warp_m * kWarpM + mt * 16 + (lane >> 2);
      const float* c = acc[mt][nt];
      if (token < n) *reinterpret_cast<float2*>(y + size_t(token) * rows + col) = make_float2(c[0] + b.x, c[1] + b.y);
      if (token + 8 < n) *reinterpret_cast<float2*>(y + size_t(token + 8) * rows + col) = make_float2(c[2] + b.x, c[3] + b.y);
    }
  }
}

template <typename T>
void launch(const float* x, int n, const void* w, int rows, int cols, const float* bias, float* y, cudaStream_t s) {
  static const bool attributes_set = [] {  // beyond 48 KB of shared memory only when asked for
    RL_CUDA_CHECK(cudaFuncSetAttribute(gemm_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
    return true;
  }();
  (void)attributes_set;
  const dim3 grid((rows + kBN - 1) / kBN, (n + kBM - 1) / kBM);
  launch_chained("gemm_kernel", gemm_kernel<T>, grid, dim3(kThreads), kSmemBytes, s, x, n, static_cast<const T*>(w), rows, cols,
                 bias, y);
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

bool gemm_supports(WeightType type, int rows, int cols) {
  return type != WeightType::F32 && rows > 0 && cols > 0 && rows % 8 == 0 && cols % 8 == 0;
}

void gemm(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
          cudaStream_t stream) {
  if (n <= 0) throw std::runtime_error("gemm: no tokens");
  if (!gemm_supports(type, rows, cols)) throw std::runtime_error("gemm: needs F16 or BF16 weights with rows and cols multiples of 8");
  if (!aligned(x, 16) || !aligned(w, 16) || !aligned(y, 8)) throw std::runtime_error("gemm: misaligned x, W or y");
  if ((n + kBM - 1) / kBM > 65535) throw std::runtime_error("gemm: too many tokens for one launch");
  if (type == WeightType::BF16) return launch<__nv_bfloat16>(x, n, w, rows, cols, bias, y, stream);
  return launch<__half>(x, n, w, rows, cols, bias, y, stream);
}

}  // namespace rl::cuda
