#include "gemm_cublaslt.cuh"

#include <cstdint>

#include "add.cuh"
#include "cublaslt.cuh"
#include "device_util.cuh"
#include "split16.cuh"

namespace rl::cuda {
namespace {

// x[count8 * 8] float32 -> x16 in T, eight values a thread and step.
template <typename T>
__global__ void round_x_kernel(const float* __restrict__ x, const size_t count8, uint4* __restrict__ x16) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count8; i += size_t(gridDim.x) * blockDim.x) {
    const float4 a = reinterpret_cast<const float4*>(x)[2 * i], b = reinterpret_cast<const float4*>(x)[2 * i + 1];
    const float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    uint32_t h[4];
    float2 unused;
#pragma unroll
    for (int j = 0; j < 4; ++j) h[j] = Round16<T>::pack(v[2 * j], v[2 * j + 1], unused);
    x16[i] = make_uint4(h[0], h[1], h[2], h[3]);
  }
}

template <typename T>
void round_x(const float* x, size_t count8, void* x16, cudaStream_t s) {
  launch_chained("round_x_kernel", round_x_kernel<T>, dim3(elementwise_blocks(count8)), dim3(256), 0, s, x, count8, static_cast<uint4*>(x16));
}

// x[n][cols] rounded to `type` (F16, BF16) into x16; cols is a multiple of 8 (gemm_supports).
void round_x_any(const float* x, int n, int cols, WeightType type, void* x16, cudaStream_t s) {
  const size_t count8 = size_t(n) * cols / 8;
  if (type == WeightType::BF16) round_x<__nv_bfloat16>(x, count8, x16, s);
  else round_x<__half>(x, count8, x16, s);
}

size_t x16_bytes(int n, int cols) { return (size_t(n) * cols * 2 + 255) / 256 * 256; }

}  // namespace

size_t gemm_cublaslt_workspace_bytes(int n, int cols) { return kCublasLtWorkspaceBytes + x16_bytes(n, cols); }

void* gemm_cublaslt_x16(void* workspace) { return static_cast<char*>(workspace) + kCublasLtWorkspaceBytes; }

bool gemm_cublaslt_add(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* residual, float* y,
                       void* workspace, cudaStream_t stream) {
  if (cublaslt_version() == 0 || type == WeightType::F32) return false;
  if (x) round_x_any(x, n, cols, type, gemm_cublaslt_x16(workspace), stream);
  return cublaslt_matmul(type, rows, cols, n, w, gemm_cublaslt_x16(workspace), y, workspace, stream, residual);
}

bool gemm_cublaslt(const float* x, int n, WeightType type, int cols, const GemmProduct* products, int count, void* workspace,
                   cudaStream_t stream, bool y16) {
  if (cublaslt_version() == 0 || type == WeightType::F32) return false;
  for (int i = 0; i < count; i++) {
    if (y16 && products[i].bias) return false;
  }
  if (x) round_x_any(x, n, cols, type, gemm_cublaslt_x16(workspace), stream);
  for (int i = 0; i < count; i++) {
    const GemmProduct& p = products[i];
    if (!cublaslt_matmul(type, p.rows, cols, n, p.w, gemm_cublaslt_x16(workspace), p.y, workspace, stream, nullptr, y16)) return false;
    if (p.bias) add_bias(p.y, n, p.rows, p.bias, stream);
  }
  return true;
}

}  // namespace rl::cuda
