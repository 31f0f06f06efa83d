#include "gemm_cublaslt.cuh"

#include <cstdint>

#include "add.cuh"
#include "cublaslt.cuh"
#include "device_util.cuh"
#include "split16.cuh"

namespace rl::cuda {
namespace {

// x[count8 * 8] float32 -> hi (and lo = x - hi when kSplit) in T, eight values a thread and step.
template <typename T, bool kSplit>
__global__ void round_x_kernel(const float* __restrict__ x, const size_t count8, uint4* __restrict__ hi, uint4* __restrict__ lo) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count8; i += size_t(gridDim.x) * blockDim.x) {
    const float4 a = reinterpret_cast<const float4*>(x)[2 * i], b = reinterpret_cast<const float4*>(x)[2 * i + 1];
    const float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    uint32_t h[4], l[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (kSplit) {
        split2<T>(v + 2 * j, h[j], l[j]);
      } else {
        float2 unused;
        h[j] = Round16<T>::pack(v[2 * j], v[2 * j + 1], unused);
      }
    }
    hi[i] = make_uint4(h[0], h[1], h[2], h[3]);
    if constexpr (kSplit) lo[i] = make_uint4(l[0], l[1], l[2], l[3]);
  }
}

template <typename T>
void round_x(const float* x, size_t count8, void* hi, void* lo, cudaStream_t s) {
  const unsigned blocks = unsigned(count8 < size_t(256) * 4096 ? (count8 + 255) / 256 : 4096);
  if (lo) launch_chained("round_x_kernel", round_x_kernel<T, true>, dim3(blocks), dim3(256), 0, s, x, count8,
                         static_cast<uint4*>(hi), static_cast<uint4*>(lo));
  else launch_chained("round_x_kernel", round_x_kernel<T, false>, dim3(blocks), dim3(256), 0, s, x, count8,
                      static_cast<uint4*>(hi), static_cast<uint4*>(nullptr));
}

size_t x16_bytes(int n, int cols) { return (size_t(n) * cols * 2 + 255) / 256 * 256; }

}  // namespace

size_t gemm_cublaslt_workspace_bytes(int n, int cols, PrefillPrecision precision) {
  return kCublasLtWorkspaceBytes + x16_bytes(n, cols) * (precision == PrefillPrecision::Float32 ? 2 : 1);
}

bool gemm_cublaslt(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
                   PrefillPrecision precision, void* workspace, cudaStream_t stream) {
  if (cublaslt_version() == 0 || type == WeightType::F32) return false;
  const bool split = precision == PrefillPrecision::Float32;
  char* hi = static_cast<char*>(workspace) + kCublasLtWorkspaceBytes;
  char* lo = split ? hi + x16_bytes(n, cols) : nullptr;
  const size_t count8 = size_t(n) * cols / 8;  // cols is a multiple of 8 (gemm_supports)
  if (type == WeightType::BF16) round_x<__nv_bfloat16>(x, count8, hi, lo, stream);
  else round_x<__half>(x, count8, hi, lo, stream);
  if (!cublaslt_matmul(type, rows, cols, n, w, hi, 0.f, y, workspace, stream)) return false;
  if (split && !cublaslt_matmul(type, rows, cols, n, w, lo, 1.f, y, workspace, stream)) return false;
  if (bias) add_bias(y, n, rows, bias, stream);
  return true;
}

}  // namespace rl::cuda
