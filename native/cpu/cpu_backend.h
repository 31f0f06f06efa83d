// The CPU backend: the reference every other backend is tested against. Each op lives in its own
// file pair in this folder; this class only wires them to the Backend interface and owns the
// thread pool and the scratch memory they share.
#pragma once
#include <memory>
#include <vector>

#include "backend.h"
#include "cpu/thread_pool.h"

namespace rl {

class CpuBackend final : public Backend {
 public:
  // `threads` for the matrix work, the caller included (0: one per core).
  explicit CpuBackend(int threads) : pool_(threads) {}

  const char* name() const override { return "cpu"; }
  int threads() const { return pool_.size(); }

  float* alloc(size_t count) override;
  void copy_to_host(const float* src, size_t count, float* dst) override;
  void embed(const Weight& table, const int32_t* tokens, int n, float* out) override;
  void rmsnorm(const float* x, const Weight& weight, int n, float eps, float* out) override;
  void matmul(const float* x, int n, const Weight& w, const Weight* bias, float* y) override;
  void rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq) override;
  void swiglu(const float* gate, const float* up, size_t count, float* out) override;
  void add(float* x, const float* y, size_t count) override;
  void kv_write(KvCache& kv, int seq, int layer, int pos0, int n, const float* k, const float* v) override;
  void kv_flush(KvCache&) override {}  // kv_write writes the host cache at once
  void attention(const KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out) override;

 private:
  ThreadPool pool_;
  std::vector<float> matmul_scratch_;  // converted weight rows, one per pool thread
  std::vector<std::unique_ptr<float[]>> buffers_;
};

}  // namespace rl
