#include "wgmma.cuh"

#include "cuda_check.cuh"

namespace rl::cuda {
namespace {

__global__ void wgmma_probe_kernel(int* has) {
#ifdef RL_WGMMA
  *has = 1;
#else
  *has = 0;
#endif
}

}  // namespace

bool wgmma_available() {
  static const bool available = [] {
    int device = 0, major = 0, minor = 0;
    RL_CUDA_CHECK(cudaGetDevice(&device));
    RL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    RL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    if (major != 9 || minor != 0) return false;
    int* has = nullptr;
    int result = 0;
    RL_CUDA_CHECK(cudaMalloc(&has, sizeof(int)));
    wgmma_probe_kernel<<<1, 1>>>(has);
    const cudaError_t launched = cudaGetLastError();
    RL_CUDA_CHECK(cudaMemcpy(&result, has, sizeof(int), cudaMemcpyDeviceToHost));
    RL_CUDA_CHECK(cudaFree(has));
    return launched == cudaSuccess && result == 1;
  }();
  return available;
}

}  // namespace rl::cuda
