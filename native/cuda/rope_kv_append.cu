#include "rope_kv_append.cuh"

#include <stdexcept>

#include "device_util.cuh"
#include "rope_rotate.cuh"

namespace rl::cuda {
namespace {

__global__ void rope_kv_append_kernel(float* __restrict__ q, const int n_heads, float* __restrict__ k, const float* __restrict__ v,
                                      const PagedKvF32 kv, float* __restrict__ summary, const int pos0, const int n, const int length,
                                      const float* __restrict__ inv_freq, float* __restrict__ staged, float* __restrict__ q_host) {
  grid_dependency_wait();
  const int hd = kv.head_dim, half = hd / 2, n_kv = kv.n_kv_heads, bs = kv.block_size;
  if (int(blockIdx.x) < n_heads) {  // a query head: rotate each token's copy
    const int h = blockIdx.x;
    for (int t = 0; t < n; ++t) {
      const size_t at = (size_t(t) * n_heads + h) * hd;
      float* x = q + at;
      for (int i = threadIdx.x; i < half; i += blockDim.x) {
        rope_rotate(x[i], x[i + half], pos0 + t, inv_freq[i]);
        if (q_host) q_host[at + i] = x[i], q_host[at + i + half] = x[i + half];
      }
    }
    return;
  }
  const int h = blockIdx.x - n_heads;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float f = inv_freq[i];
    float lo0 = 0.f, hi0 = 0.f, lo1 = 0.f, hi1 = 0.f;  // the current block's summary of dims i, i + half
    float* mn = nullptr;
    for (int t = 0; t < n; ++t) {
      const int pos = pos0 + t, lb = pos / bs;
      const size_t src = (size_t(t) * n_kv + h) * hd;
      float a = k[src + i], b = k[src + i + half];
      rope_rotate(a, b, pos, f);
      k[src + i] = a, k[src + i + half] = b;
      const int phys = kv.block_table[lb];
      const size_t dst = ((size_t(phys) * n_kv + h) * bs + pos % bs) * hd;
      kv.k[dst + i] = a, kv.k[dst + i + half] = b;
      kv.v[dst + i] = v[src + i], kv.v[dst + i + half] = v[src + i + half];
      if (staged) {
        float* sv = staged + size_t(n) * n_kv * hd;  // the values after all the keys
        staged[src + i] = a, staged[src + i + half] = b;
        sv[src + i] = v[src + i], sv[src + i + half] = v[src + i + half];
      }
      // key_summary.cu: a block's summary is read when the write enters it and stored when it leaves.
      if (t == 0 || pos % bs == 0) {
        if (mn) mn[i] = lo0, mn[i + half] = lo1, mn[hd + i] = hi0, mn[hd + i + half] = hi1;
        mn = summary + (size_t(phys) * n_kv + h) * 2 * hd;
        lo0 = mn[i], lo1 = mn[i + half], hi0 = mn[hd + i], hi1 = mn[hd + i + half];
      }
      if (pos % bs == 0 && pos >= length) {
        lo0 = hi0 = a;
        lo1 = hi1 = b;
      } else {
        lo0 = a < lo0 ? a : lo0, hi0 = hi0 < a ? a : hi0;
        lo1 = b < lo1 ? b : lo1, hi1 = hi1 < b ? b : hi1;
      }
    }
    if (mn) mn[i] = lo0, mn[i + half] = lo1, mn[hd + i] = hi0, mn[hd + i + half] = hi1;
  }
}

}  // namespace

void rope_kv_append(float* q, int n_heads, float* k, const float* v, const PagedKvF32& kv, float* summary, int pos0, int n,
                    int length, const float* inv_freq, float* staged, float* q_host, cudaStream_t stream) {
  if (n <= 0) return;
  if (kv.head_dim % 2 != 0) throw std::runtime_error("rope_kv_append: head_dim must be even");
  const int half = kv.head_dim / 2;
  launch_chained("rope_kv_append_kernel", rope_kv_append_kernel, dim3(n_heads + kv.n_kv_heads), dim3(half < 128 ? half : 128), 0,
                 stream, q, n_heads, k, v, kv, summary, pos0, n, length, inv_freq, staged, q_host);
}

}  // namespace rl::cuda
