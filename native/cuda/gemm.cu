#include "gemm.cuh"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "device_util.cuh"
#include "gemm_cublaslt.cuh"
#include "gemm_wgmma.cuh"
#include "mma.cuh"
#include "split16.cuh"

namespace rl::cuda {
namespace {

// A CTA computes a tile of kBM tokens x kBN rows of W with 4 warps, each a 32 x 64 tile. k-slices
// of kBK columns are staged in shared memory kStages deep by cp.async: x as float32, W in its type.
// x is split into hi + lo when a warp loads its fragments. (bench/gpu/NOTES.md: the variants tried.)
constexpr int kBM = 64, kBN = 128, kBK = 32, kStages = 3;
constexpr int kWarpsM = 2, kWarpsN = 2, kThreads = kWarpsM * kWarpsN * 32;
constexpr int kWarpM = kBM / kWarpsM, kWarpN = kBN / kWarpsN;
constexpr int kMTiles = kWarpM / 16, kNTiles = kWarpN / 8;  // m16 and n8 mma tiles of a warp
constexpr int kXLoads = kBM * kBK / 4 / kThreads;  // 16-byte copies of x per thread and slice
constexpr int kWLoads = kBN * kBK / 8 / kThreads;  // 16-byte copies of W per thread and slice
static_assert(kXLoads * 4 * kThreads == kBM * kBK && kWLoads * 8 * kThreads == kBN * kBK, "tile not covered");

struct Stage {
  float x[kBM][kBK + 4 * 2];  // padded rows: a half-warp's float2 fragment loads hit distinct banks
  uint16_t w[kBN][kBK + 8];   // padded rows: ldmatrix's 8 row addresses hit distinct banks
};
constexpr int kSmemBytes = kStages * sizeof(Stage);

// W's element type: the mma instruction.
template <typename T>
struct Mma;
template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <>
struct Mma<__half> {
  static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// 16 bytes global -> shared; zero-filled (nothing read) when !valid.
__device__ __forceinline__ void cp_async16_or_zero(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));
}

template <typename T, PrefillPrecision P>
__global__ void __launch_bounds__(kThreads, 3)
    gemm_kernel(const float* __restrict__ x, const int n, const T* __restrict__ w, const int rows, const int cols,
                const float* __restrict__ bias, float* __restrict__ y) {
  constexpr bool kSplit = P == PrefillPrecision::Float32;
  extern __shared__ __align__(16) unsigned char smem[];
  Stage* stage = reinterpret_cast<Stage*>(smem);  // [kStages]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / kWarpsN, warp_n = warp % kWarpsN;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;  // first token, first row of W
  const int slices = (cols + kBK - 1) / kBK;

  auto copy_w = [&](int s, int slice) {
#pragma unroll
    for (int i = 0; i < kWLoads; ++i) {
      const int idx = tid + i * kThreads, r = idx / (kBK / 8), c = idx % (kBK / 8) * 8;
      const int gr = n0 + r, gc = slice * kBK + c;
      const bool valid = gr < rows && gc < cols;
      cp_async16_or_zero(&stage[s].w[r][c], valid ? w + size_t(gr) * cols + gc : w, valid);
    }
  };
  auto copy_x = [&](int s, int slice) {
#pragma unroll
    for (int i = 0; i < kXLoads; ++i) {
      const int idx = tid + i * kThreads, r = idx / (kBK / 4), c = idx % (kBK / 4) * 4;
      const int gr = m0 + r, gc = slice * kBK + c;
      const bool valid = gr < n && gc < cols;
      cp_async16_or_zero(&stage[s].x[r][c], valid ? x + size_t(gr) * cols + gc : x, valid);
    }
  };

  // Float32: the tensor cores add each product to the accumulator truncated, an error that grows
  // with K (2e-5 relative at K = 8960): each k16 step's two products start from zero, and float32
  // adds (rounded to nearest) sum the steps. Half rounds x once and adds into the accumulator.
  float acc[kMTiles][kNTiles][4] = {};
  auto compute = [&](const Stage& st) {
#pragma unroll
    for (int k16 = 0; k16 < kBK; k16 += 16) {
      // m16k16 A fragments: a0 (row g, cols 2t, 2t+1), a1 row g+8, a2 cols + 8, a3 both (g = lane/4, t = lane%4).
      uint32_t a_hi[kMTiles][4], a_lo[kSplit ? kMTiles : 1][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        const int r = warp_m * kWarpM + mt * 16 + (lane >> 2), c = k16 + (lane & 3) * 2;
        const float* at[4] = {&st.x[r][c], &st.x[r + 8][c], &st.x[r][c + 8], &st.x[r + 8][c + 8]};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          if constexpr (kSplit) {
            split2<T>(at[i], a_hi[mt][i], a_lo[mt][i]);
          } else {
            const float2 v = *reinterpret_cast<const float2*>(at[i]);
            float2 unused;
            a_hi[mt][i] = Round16<T>::pack(v.x, v.y, unused);
          }
        }
      }
#pragma unroll
      for (int np = 0; np < kNTiles / 2; ++np) {  // two n8 tiles per ldmatrix.x4: b0, b1 of each
        uint32_t b[4];
        const int r = warp_n * kWarpN + np * 16 + (lane & 7) + (lane >> 4) * 8, c = k16 + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(b, &st.w[r][c]);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            if constexpr (kSplit) {
              float part[4] = {};
              Mma<T>::run(part, a_lo[mt], b[2 * h], b[2 * h + 1]);
              Mma<T>::run(part, a_hi[mt], b[2 * h], b[2 * h + 1]);
#pragma unroll
              for (int e = 0; e < 4; ++e) acc[mt][2 * np + h][e] += part[e];
            } else {
              Mma<T>::run(acc[mt][2 * np + h], a_hi[mt], b[2 * h], b[2 * h + 1]);
            }
          }
        }
      }
    }
  };

  // Group i holds slice i's copies; group 0 also the weights of the slices before kStages - 1,
  // fetched before waiting for the previous kernel (they do not depend on it).
  for (int i = 0; i < kStages - 1; ++i)
    if (i < slices) copy_w(i, i);
  grid_dependency_wait();
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < slices) copy_x(i, i);
    cp_async_commit();
  }
  for (int slice = 0; slice < slices; ++slice) {
    cp_async_wait<kStages - 2>();  // this thread's copies of the slice landed ...
    __syncthreads();               // ... and everyone's; the stage refilled below was last read before this barrier
    const int next = slice + kStages - 1;
    if (next < slices) {
      copy_w(next % kStages, next);
      copy_x(next % kStages, next);
    }
    cp_async_commit();
    compute(stage[slice % kStages]);
  }

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

template <typename T, PrefillPrecision P>
void launch(const float* x, int n, const void* w, int rows, int cols, const float* bias, float* y, cudaStream_t s) {
  static const bool attributes_set = [] {  // beyond 48 KB of shared memory only when asked for
    RL_CUDA_CHECK(cudaFuncSetAttribute(gemm_kernel<T, P>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
    return true;
  }();
  (void)attributes_set;
  const dim3 grid((rows + kBN - 1) / kBN, (n + kBM - 1) / kBM);
  launch_chained("gemm_kernel", gemm_kernel<T, P>, grid, dim3(kThreads), kSmemBytes, s, x, n, static_cast<const T*>(w), rows,
                 cols, bias, y);
}

template <typename T>
void launch(const float* x, int n, const void* w, int rows, int cols, const float* bias, float* y, PrefillPrecision precision,
            cudaStream_t s) {
  if (precision == PrefillPrecision::Float32) launch<T, PrefillPrecision::Float32>(x, n, w, rows, cols, bias, y, s);
  else launch<T, PrefillPrecision::Half>(x, n, w, rows, cols, bias, y, s);
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

bool gemm_supports(WeightType type, int rows, int cols) {
  return type != WeightType::F32 && rows > 0 && cols > 0 && rows % 8 == 0 && cols % 8 == 0;
}

size_t gemm_workspace_bytes(GemmLibrary library, int n, int cols, PrefillPrecision precision) {
  const size_t lt = library == GemmLibrary::Own || precision == PrefillPrecision::Float32 ? 0 : gemm_cublaslt_workspace_bytes(n, cols);
  return std::max(lt, gemm_wgmma_workspace_bytes(n, cols, precision));
}

void gemm_products(const float* x, int n, WeightType type, int cols, const GemmProduct* products, int count,
                   PrefillPrecision precision, GemmLibrary library, void* workspace, cudaStream_t stream) {
  if (n <= 0) throw std::runtime_error("gemm: no tokens");
  for (int i = 0; i < count; i++) {
    const GemmProduct& p = products[i];
    if (!gemm_supports(type, p.rows, cols)) throw std::runtime_error("gemm: needs F16 or BF16 weights with rows and cols multiples of 8");
    if (!aligned(x, 16) || !aligned(p.w, 16) || !aligned(p.y, 8)) throw std::runtime_error("gemm: misaligned x, W or y");
  }
  if (library == GemmLibrary::CublasLt && precision == PrefillPrecision::Float32)
    throw std::runtime_error("gemm: cuBLASLt computes the Half prefill only (gemm_cublaslt.cuh)");
  if (library != GemmLibrary::Own && precision == PrefillPrecision::Half) {
    if (!workspace || !aligned(workspace, 256)) throw std::runtime_error("gemm: cuBLASLt needs a 256-byte aligned workspace");
    if (gemm_cublaslt(x, n, type, cols, products, count, workspace, stream)) return;
    if (library == GemmLibrary::CublasLt) throw std::runtime_error("gemm: cuBLASLt did not compute the product (the reason is on stderr)");
  }
  if ((n + kBM - 1) / kBM > 65535) throw std::runtime_error("gemm: too many tokens for one launch");
  for (int i = 0; i < count; i++) {
    const GemmProduct& p = products[i];
    if (gemm_wgmma(x, n, p.w, type, p.rows, cols, p.bias, p.y, precision, workspace, stream)) continue;
    if (type == WeightType::BF16) launch<__nv_bfloat16>(x, n, p.w, p.rows, cols, p.bias, p.y, precision, stream);
    else launch<__half>(x, n, p.w, p.rows, cols, p.bias, p.y, precision, stream);
  }
}

void gemm(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
          PrefillPrecision precision, GemmLibrary library, void* workspace, cudaStream_t stream) {
  const GemmProduct product{w, rows, bias, y};
  gemm_products(x, n, type, cols, &product, 1, precision, library, workspace, stream);
}

}  // namespace rl::cuda
