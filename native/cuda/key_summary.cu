#include "key_summary.cuh"

#include "device_util.cuh"

namespace rl::cuda {
namespace {

// One CTA per (touched block, KV head); thread i folds dimension i of the block's new keys in order.
__global__ void key_summary_append_kernel(float* __restrict__ summary, const int* __restrict__ block_table, const int n_kv_heads,
                                          const int hd, const int bs, const int pos0, const int n, const int length,
                                          const float* __restrict__ k) {
  grid_dependency_wait();
  const int lb = pos0 / bs + blockIdx.x / n_kv_heads, h = blockIdx.x % n_kv_heads;
  const int first = max(pos0, lb * bs), last = min(pos0 + n, (lb + 1) * bs);  // [first, last) of this block
  float* mn = summary + (size_t(block_table[lb]) * n_kv_heads + h) * 2 * hd;
  float* mx = mn + hd;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float lo = mn[i], hi = mx[i];
    for (int p = first; p < last; p++) {
      const float key = k[(size_t(p - pos0) * n_kv_heads + h) * hd + i];
      if (p % bs == 0 && p >= length) {
        lo = key;
        hi = key;
      } else {
        lo = key < lo ? key : lo;  // std::min(lo, key)
        hi = hi < key ? key : hi;  // std::max(hi, key)
      }
    }
    mn[i] = lo;
    mx[i] = hi;
  }
}

}  // namespace

void key_summary_append(float* summary, const int* block_table, int n_kv_heads, int head_dim, int block_size, int pos0, int n,
                        int length, const float* k, cudaStream_t stream) {
  if (n <= 0) return;
  const int blocks = (pos0 + n - 1) / block_size - pos0 / block_size + 1;
  launch_chained("key_summary_append_kernel", key_summary_append_kernel, dim3(blocks * n_kv_heads), dim3(128), 0, stream, summary,
                 block_table, n_kv_heads, head_dim, block_size, pos0, n, length, k);
}

}  // namespace rl::cuda
