#include "add.cuh"

#include "device_util.cuh"

namespace rl::cuda {
namespace {

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, const size_t count) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void add_bias_kernel(float* __restrict__ y, const size_t count, const int cols, const float* __restrict__ bias) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x)
    y[i] += bias[i % cols];
}

}  // namespace

void add(float* x, const float* y, size_t count, cudaStream_t stream) {
  if (count == 0) return;
  launch_chained("add_kernel", add_kernel, dim3(elementwise_blocks(count)), dim3(256), 0, stream, x, y, count);
}

void add_bias(float* y, int n, int cols, const float* bias, cudaStream_t stream) {
  const size_t count = size_t(n) * cols;
  if (count == 0) return;
  launch_chained("add_bias_kernel", add_bias_kernel, dim3(elementwise_blocks(count)), dim3(256), 0, stream, y, count, cols, bias);
}

}  // namespace rl::cuda
