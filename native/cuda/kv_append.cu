#include "kv_append.cuh"

#include "device_util.cuh"

namespace rl::cuda {
namespace {

// One CTA per (token, KV head); threads copy head_dim floats of k and of v.
__global__ void kv_append_kernel(PagedKvF32 kv, const int pos0, const float* __restrict__ k,
                                 const float* __restrict__ v) {
  grid_dependency_wait();
  const int t = blockIdx.x / kv.n_kv_heads, h = blockIdx.x % kv.n_kv_heads;
  const int pos = pos0 + t;
  const int phys = kv.block_table[pos / kv.block_size];
  const size_t dst = ((size_t(phys) * kv.n_kv_heads + h) * kv.block_size + pos % kv.block_size) * kv.head_dim;
  const size_t src = size_t(blockIdx.x) * kv.head_dim;
  for (int d = threadIdx.x; d < kv.head_dim; d += blockDim.x) {
    kv.k[dst + d] = k[src + d];
    kv.v[dst + d] = v[src + d];
  }
}

}  // namespace

void kv_append(const PagedKvF32& kv, int pos0, int n, const float* k, const float* v, cudaStream_t stream) {
  if (n <= 0) return;
  launch_chained("kv_append_kernel", kv_append_kernel, dim3(n * kv.n_kv_heads), dim3(128), 0, stream, kv, pos0, k, v);
}

}  // namespace rl::cuda
