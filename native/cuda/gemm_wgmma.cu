#include "gemm_wgmma.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "bulk_copy.cuh"
#include "device_util.cuh"
#include "split16.cuh"
#include "switches.h"
#include "wgmma.cuh"

namespace rl::cuda {
namespace {

// x -> its 16-bit planes in W's type: hi (rounded) and, for Float32, lo = x - hi; [n][cols] each.
template <typename T, PrefillPrecision P>
__global__ void split_x_kernel(const float* __restrict__ x, const size_t count, T* __restrict__ hi, T* __restrict__ lo) {
  grid_dependency_wait();
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count / 8; i += size_t(gridDim.x) * blockDim.x) {
    const float4 a = reinterpret_cast<const float4*>(x)[2 * i], b = reinterpret_cast<const float4*>(x)[2 * i + 1];
    const float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    uint4 h, l;
    uint32_t* hw = &h.x;
    uint32_t* lw = &l.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float2 r, unused;
      hw[j] = Round16<T>::pack(v[2 * j], v[2 * j + 1], r);
      lw[j] = Round16<T>::pack(v[2 * j] - r.x, v[2 * j + 1] - r.y, unused);
    }
    reinterpret_cast<uint4*>(hi)[i] = h;
    if constexpr (P == PrefillPrecision::Float32) reinterpret_cast<uint4*>(lo)[i] = l;
  }
}

// A CTA computes kBM tokens x BN rows of W: two warpgroups of 64 tokens each, fed by a third whose
// first thread copies each k-slice of kBK columns (x's planes and W) with TMA into one of kStages
// stages, as 128-byte rows in the 128-byte swizzle that wgmma reads (wgmma_step_sw128). full[] says a
// stage has landed, empty[] that both warpgroups' products are done with it.
constexpr int kBM = 128, kBK = 64, kStages = 4, kConsumers = 256, kThreads = kConsumers + 128;
constexpr int kPlaneTile = kBM * kBK * 2;  // bytes of one plane's x tile

template <PrefillPrecision P, int BN>
struct Layout {
  static constexpr int kPlanes = P == PrefillPrecision::Float32 ? 2 : 1;
  static constexpr int kStage = kPlanes * kPlaneTile + BN * kBK * 2;  // bytes: x hi, (x lo,) W
  static constexpr int kBytes = 1024 + kStages * kStage + 2 * kStages * 8;  // 1024: to align the stages
};

template <typename T, PrefillPrecision P, int BN>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_wgmma_kernel(const __grid_constant__ CUtensorMap x_hi, const __grid_constant__ CUtensorMap x_lo,
                      const __grid_constant__ CUtensorMap w, const int n, const int rows, const int cols,
                      const float* __restrict__ bias, float* __restrict__ y) {
  using L = Layout<P, BN>;
  constexpr bool kSplit = P == PrefillPrecision::Float32;
  extern __shared__ unsigned char smem_raw[];
  // the swizzle repeats every 1024 bytes: stages start on such a boundary
  unsigned char* smem = smem_raw + ((1024 - smem_address(smem_raw) % 1024) % 1024);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * L::kStage);
  uint64_t* empty = full + kStages;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * BN;  // first token, first row of W
  const int slices = (cols + kBK - 1) / kBK;

  if (tid == 0) stage_ring_init(full, empty, kStages, kConsumers);
  __syncthreads();
  grid_dependency_wait();
  if (producer_warp(warp, kConsumers / 32)) {
    set_max_registers<false, 24>();
    if (tid == kConsumers) {
      for (int slice = 0; slice < slices; ++slice) {
        const int s = slice % kStages, round = slice / kStages;
        if (round > 0) mbarrier_wait(&empty[s], (round - 1) & 1);
        unsigned char* st = smem + s * L::kStage;
        mbarrier_arrive_expect_tx(&full[s], L::kStage);
        tensor_copy_to_shared(st, &x_hi, slice * kBK, m0, &full[s]);
        if constexpr (kSplit) tensor_copy_to_shared(st + kPlaneTile, &x_lo, slice * kBK, m0, &full[s]);
        tensor_copy_to_shared(st + L::kPlanes * kPlaneTile, &w, slice * kBK, n0, &full[s]);
      }
    }
    return;
  }
  set_max_registers<true, 240>();

  const int wg = warp / 4;  // this warpgroup's tokens: 64 wg ..
  float acc[BN / 8][4] = {};
  float part[kSplit ? BN / 8 : 1][4];
  for (int slice = 0; slice < slices; ++slice) {
    const int s = slice % kStages;
    mbarrier_wait(&full[s], (slice / kStages) & 1);
    const unsigned char* st = smem + s * L::kStage;
    const unsigned char* a_hi = st + 64 * 128 * wg;  // 64 rows of 128 bytes a warpgroup
    const unsigned char* a_lo = a_hi + kPlaneTile;
    const unsigned char* b = st + L::kPlanes * kPlaneTile;
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < kBK / 16; ++k) {
      if constexpr (kSplit) {
        wgmma_ss_m64k16<BN, T>(part, wgmma_step_sw128(a_lo, k), wgmma_step_sw128(b, k), k > 0);
        wgmma_ss_m64k16<BN, T>(part, wgmma_step_sw128(a_hi, k), wgmma_step_sw128(b, k), true);
      } else {
        wgmma_ss_m64k16<BN, T>(acc, wgmma_step_sw128(a_hi, k), wgmma_step_sw128(b, k), true);
      }
    }
    wgmma_commit();
    wgmma_wait<0>();
    mbarrier_arrive(&empty[s]);
    if constexpr (kSplit) {  // the slice's products from zero, then float32 adds (gemm.cuh)
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][e] += part[j][e];
    }
  }

  // acc[j]: c0, c1 at (row0, 8 j + 2 (lane % 4) + {0, 1}); c2, c3 at row0 + 8.
  const int row0 = 64 * wg + 16 * (warp % 4) + (lane >> 2);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int col = n0 + 8 * j + (lane & 3) * 2;
    if (col >= rows) continue;  // rows is a multiple of 8: an n8 tile is all in or all out
    const float2 bb = bias ? make_float2(bias[col], bias[col + 1]) : make_float2(0.f, 0.f);
    const int token = m0 + row0;
    if (token < n) *reinterpret_cast<float2*>(y + size_t(token) * rows + col) = make_float2(acc[j][0] + bb.x, acc[j][1] + bb.y);
    if (token + 8 < n) *reinterpret_cast<float2*>(y + size_t(token + 8) * rows + col) = make_float2(acc[j][2] + bb.x, acc[j][3] + bb.y);
  }
}

// The driver's tensor-map encoder, found through the runtime (no libcuda link); null without one.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      return PFN_cuTensorMapEncodeTiled_v12000(nullptr);
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encode;
}

// A [outer][inner] matrix of 16-bit T, boxes of 64 x box_outer in the 128-byte swizzle, zeros past its edges.
template <typename T>
CUtensorMap tensor_map(const void* base, int inner, int outer, int box_outer) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {cuuint64_t(inner), cuuint64_t(outer)};
  const cuuint64_t strides[1] = {cuuint64_t(inner) * sizeof(T)};
  const cuuint32_t box[2] = {cuuint32_t(kBK), cuuint32_t(box_outer)};
  const cuuint32_t unit[2] = {1, 1};
  const auto type = std::is_same_v<T, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const CUresult r = tensor_map_encoder()(&map, type, 2, const_cast<void*>(base), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw std::runtime_error("gemm: cuTensorMapEncodeTiled failed (" + std::to_string(int(r)) + ")");
  return map;
}

template <typename T, PrefillPrecision P, int BN>
void launch(const T* hi, const T* lo, int n, const void* w, int rows, int cols, const float* bias, float* y, cudaStream_t s) {
  constexpr int kSmemBytes = Layout<P, BN>::kBytes;
  static const bool attributes_set = [] {  // beyond 48 KB of shared memory only when asked for
    RL_CUDA_CHECK(cudaFuncSetAttribute(gemm_wgmma_kernel<T, P, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
    return true;
  }();
  (void)attributes_set;
  const CUtensorMap map_hi = tensor_map<T>(hi, cols, n, kBM), map_lo = tensor_map<T>(lo, cols, n, kBM);
  const CUtensorMap map_w = tensor_map<T>(w, cols, rows, BN);
  const dim3 grid((rows + BN - 1) / BN, (n + kBM - 1) / kBM);
  launch_chained("gemm_wgmma_kernel", gemm_wgmma_kernel<T, P, BN>, grid, dim3(kThreads), kSmemBytes, s, map_hi, map_lo, map_w, n,
                 rows, cols, bias, y);
}

// x split into the workspace, then the product: 128 rows of W a CTA where that still gives two CTAs an
// SM to share out, else 64 (q, k, v, o_proj, down at 2048 tokens).
template <typename T, PrefillPrecision P>
void launch(const float* x, int n, const void* w, int rows, int cols, const float* bias, float* y, void* workspace, cudaStream_t s) {
  static const int sms = multiprocessor_count();
  T* hi = static_cast<T*>(workspace);
  T* lo = hi + size_t(n) * cols;
  const size_t count = size_t(n) * cols;
  launch_chained("split_x_kernel", split_x_kernel<T, P>, dim3(elementwise_blocks(count / 8)), dim3(256), 0, s, x, count, hi, lo);
  const long wide_ctas = long((rows + 127) / 128) * ((n + kBM - 1) / kBM);
  if (wide_ctas >= 2L * sms) launch<T, P, 128>(hi, P == PrefillPrecision::Float32 ? lo : hi, n, w, rows, cols, bias, y, s);
  else launch<T, P, 64>(hi, P == PrefillPrecision::Float32 ? lo : hi, n, w, rows, cols, bias, y, s);
}

template <typename T>
void launch(const float* x, int n, const void* w, int rows, int cols, const float* bias, float* y, PrefillPrecision precision,
            void* workspace, cudaStream_t s) {
  if (precision == PrefillPrecision::Float32) launch<T, PrefillPrecision::Float32>(x, n, w, rows, cols, bias, y, workspace, s);
  else launch<T, PrefillPrecision::Half>(x, n, w, rows, cols, bias, y, workspace, s);
}

bool wanted() {
  static const bool on = switched_on("REPO_LENS_CUDA_WGMMA") && wgmma_available() && tensor_map_encoder() != nullptr;
  return on;
}

}  // namespace

size_t gemm_wgmma_workspace_bytes(int n, int cols, PrefillPrecision precision) {
  if (!wanted()) return 0;
  return size_t(n) * cols * sizeof(uint16_t) * (precision == PrefillPrecision::Float32 ? 2 : 1);
}

bool gemm_wgmma(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
                PrefillPrecision precision, void* workspace, cudaStream_t stream) {
  if (!wanted() || !workspace || reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return false;
  if (type == WeightType::BF16) launch<__nv_bfloat16>(x, n, w, rows, cols, bias, y, precision, workspace, stream);
  else launch<__half>(x, n, w, rows, cols, bias, y, precision, workspace, stream);
  return true;
}

}  // namespace rl::cuda
