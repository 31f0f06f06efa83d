#include "block_summary.cuh"

#include <cuda_fp16.h>

#include <stdexcept>

#include "cuda_check.cuh"

namespace rl::cuda {
namespace {

// One CTA per (logical block, KV head); thread d walks the filled rows of dim d (coalesced).
__global__ void block_summary_kernel(const PagedKvLayer kv, const int first, __half* __restrict__ key_min,
                                     __half* __restrict__ key_max) {
  const int logical = first + blockIdx.x;
  const int kvh = blockIdx.y;
  const int phys = kv.block_table[logical];
  const int fill = kv.fill(logical);
  const __half* k = kv.k + kv.tile_offset(phys, kvh);
  for (int d = threadIdx.x; d < kv.head_dim; d += blockDim.x) {
    __half lo = k[d], hi = k[d];
    for (int t = 1; t < fill; ++t) {
      const __half x = k[size_t(t) * kv.head_dim + d];
      lo = __hmin(lo, x);
      hi = __hmax(hi, x);
    }
    key_min[kv.summary_offset(phys, kvh) + d] = lo;
    key_max[kv.summary_offset(phys, kvh) + d] = hi;
  }
}

}  // namespace

void update_block_summaries(const PagedKvLayer& kv, int first, int count, __half* key_min, __half* key_max,
                            cudaStream_t stream) {
  if (count <= 0) return;
  if (first < 0 || first + count > kv.n_logical()) throw std::runtime_error("update_block_summaries: blocks out of range");
  const int threads = kv.head_dim < 128 ? kv.head_dim : 128;
  block_summary_kernel<<<dim3(count, kv.n_kv_heads), threads, 0, stream>>>(kv, first, key_min, key_max);
  RL_CUDA_CHECK_LAUNCH("block_summary_kernel");
}

}  // namespace rl::cuda
