#include "swiglu.cuh"

#include "device_util.cuh"

namespace rl::cuda {
namespace {

__global__ void swiglu_kernel(const float* __restrict__ gate, const float* __restrict__ up, const size_t count,
                              float* __restrict__ out) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.f + expf(-g)) * up[i];
  }
}

}  // namespace

void swiglu(const float* gate, const float* up, size_t count, float* out, cudaStream_t stream) {
  if (count == 0) return;
  launch_chained("swiglu_kernel", swiglu_kernel, dim3(elementwise_blocks(count)), dim3(256), 0, stream, gate, up, count, out);
}

}  // namespace rl::cuda
