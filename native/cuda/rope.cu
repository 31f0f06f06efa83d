#include "rope.cuh"

#include <stdexcept>

#include "device_util.cuh"
#include "rope_rotate.cuh"

namespace rl::cuda {
namespace {

// One CTA per (token, head); thread i rotates pair (i, i + half).
__global__ void rope_kernel(float* __restrict__ x, const int heads, const int head_dim, const int pos0,
                            const float* __restrict__ inv_freq) {
  grid_dependency_wait();
  const int t = blockIdx.x / heads;
  const int half = head_dim / 2;
  float* v = x + size_t(blockIdx.x) * head_dim;
  for (int i = threadIdx.x; i < half; i += blockDim.x) rope_rotate(v[i], v[i + half], pos0 + t, inv_freq[i]);
}

}  // namespace

void rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq, cudaStream_t stream) {
  if (n <= 0) return;
  if (head_dim % 2 != 0) throw std::runtime_error("rope: head_dim must be even");
  launch_chained("rope_kernel", rope_kernel, dim3(n * heads), dim3(head_dim / 2 < 128 ? head_dim / 2 : 128), 0, stream,
                 x, heads, head_dim, pos0, inv_freq);
}

}  // namespace rl::cuda
