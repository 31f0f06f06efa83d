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

size_t x16_bytes(int n, int cols) { return (size_t(n) * cols * 2 + 255) / 256 * 256; }

}  // namespace

size_t gemm_cublaslt_workspace_bytes(int n, int cols) { return kCublasLtWorkspaceBytes + x16_bytes(n, cols); }

bool gemm_cublaslt(const float* x, int n, WeightType type, int cols, const GemmProduct* products, int count, void* workspace,
                   cudaStream_t stream) {
  if (cublaslt_version() == 0 || type == WeightType::F32) return false;
  void* x16 = static_cast<char*>(workspace) + kCublasLtWorkspaceBytes;
  const size_t count8 = size_t(n) * cols / 8;  // cols is a multiple of 8 (gemm_supports)
  if (type == WeightType::BF16) round_x<__nv_bfloat16>(x, count8, x16, stream);
  else round_x<__half>(x, count8, x16, stream);
  for (int i = 0; i < count; i++) {
    const GemmProduct& p = products[i];
    if (!cublaslt_matmul(type, p.rows, cols, n, p.w, x16, p.y, workspace, stream)) return false;
    if (p.bias) add_bias(p.y, n, p.rows, p.bias, stream);
  }
  return true;
}

}  // namespace rl::cuda
