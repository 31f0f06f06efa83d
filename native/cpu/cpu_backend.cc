#include "cpu/cpu_backend.h"

#include <cstring>

#include "cpu/attention.h"
#include "cpu/embed.h"
#include "cpu/matmul.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope.h"
#include "cpu/swiglu.h"
#include "kv/kv_cache.h"

namespace rl {

float* CpuBackend::alloc(size_t count) {
  buffers_.emplace_back(new float[count == 0 ? 1 : count]());
  return buffers_.back().get();
}

void CpuBackend::copy_to_host(const float* src, size_t count, float* dst) { std::memcpy(dst, src, count * sizeof(float)); }

void CpuBackend::embed(const Weight& table, const int32_t* tokens, int n, float* out) { cpu_embed(table, tokens, n, out); }

void CpuBackend::rmsnorm(const float* x, const Weight& weight, int n, float eps, float* out) { cpu_rmsnorm(x, weight, n, eps, out); }

void CpuBackend::matmul(const float* x, int n, const Weight& w, const Weight* bias, float* y) {
  cpu_matmul(pool_, matmul_scratch_, x, n, w, bias, y);
}

void CpuBackend::rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq) {
  cpu_rope(x, n, heads, head_dim, pos0, inv_freq);
}

void CpuBackend::swiglu(const float* gate, const float* up, size_t count, float* out) { cpu_swiglu(gate, up, count, out); }

void CpuBackend::add(float* x, const float* y, size_t count) {
  for (size_t i = 0; i < count; i++) x[i] += y[i];
}

void CpuBackend::kv_write(KvCache& kv, int seq, int layer, int pos0, int n, const float* k, const float* v) {
  const size_t stride = static_cast<size_t>(kv.shape().n_kv_heads) * kv.shape().head_dim;
  for (int t = 0; t < n; t++) kv.write(seq, layer, pos0 + t, k + t * stride, v + t * stride);
}

void CpuBackend::attention(const KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out) {
  cpu_attention(pool_, kv, seq, layer, pos0, n, n_heads, q, out);
}

}  // namespace rl
