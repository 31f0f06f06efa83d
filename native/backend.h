// The small interface between the forward pass (model/forward.cc) and a backend (cpu/, cuda/).
//
// The forward pass only sequences these ops; each backend implements them in its own folder,
// as ggml separates ggml-cpu and ggml-cuda. Conventions for every op:
//   - Activations are row-major float32 arrays from alloc(); a backend decides where they live
//     (CpuBackend: host memory). Only copy_to_host() moves them to the caller.
//   - Weights are views of the memory-mapped model files in their stored dtype (F32, F16, BF16),
//     row-major [rows][cols] (a vector has rows == 1); ops convert them to float32 as they read.
//   - Shapes are given in each comment as [tokens][features].
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "prhs/block_attention.h"

namespace rl {

class KvCache;

// Limits every backend supports (checked when a model is loaded): stack buffers are sized by them.
constexpr int kMaxHeadDim = 512;
constexpr int kMaxBlockSize = 1024;

enum class DType { F32, F16, BF16 };

inline size_t dtype_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

// A weight tensor as stored in the model file (not owned).
struct Weight {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int rows = 0;  // 1 for a vector
  int cols = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // What else a user may want to know of how it computes (the status bar shows it), e.g. a library
  // loaded at run time; empty when nothing.
  virtual std::string detail() const { return ""; }

  // Tokens the forward pass runs through the layers at once (the activations it allocates scale with it).
  virtual int prefill_chunk() const { return 64; }

  // Activation memory for `count` floats, owned by the backend until it is destroyed.
  virtual float* alloc(size_t count) = 0;
  virtual void copy_to_host(const float* src, size_t count, float* dst) = 0;
  // y[n][w.rows] = x . w^T, as matmul with no bias, for a copy_to_host of y next (a decode step's
  // logits): a device backend may compute it in pieces and start each piece's copy at once, so that
  // copy_to_host hands over the first rows while the later ones are still computed.
  virtual void matmul_for_host(const float* x, int n, const Weight& w, float* y) { matmul(x, n, w, nullptr, y); }

  // out[n][table.cols] = rows tokens[0..n) of table [vocab][dim]. tokens is host memory, already checked < vocab.
  virtual void embed(const Weight& table, const int32_t* tokens, int n, float* out) = 0;
  // out[n][dim] = x[n][dim] / sqrt(mean(x^2) + eps) * weight[dim]
  virtual void rmsnorm(const float* x, const Weight& weight, int n, float eps, float* out) = 0;
  // y[n][w.rows] = x[n][w.cols] . w^T (+ bias[w.rows] when bias is not null)
  virtual void matmul(const float* x, int n, const Weight& w, const Weight* bias, float* y) = 0;
  // Rotates x[n][heads][head_dim] in place (HF rotate_half: pairs (i, i + head_dim/2)), token t at
  // position pos0 + t, angle = position * inv_freq[i]; inv_freq [head_dim/2] is host memory.
  virtual void rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq) = 0;
  // out[count] = silu(gate) * up
  virtual void swiglu(const float* gate, const float* up, size_t count, float* out) = 0;
  // x[count] += y[count]
  virtual void add(float* x, const float* y, size_t count) = 0;

  // Fused ops of a layer (decode saves launches with them): each defaults to the primitives above in
  // the order the forward pass ran them separately, so a backend that keeps the defaults (cpu/)
  // computes exactly what it did before; a backend may override them with fewer kernels.
  //
  // q [n][wq.rows], k [n][wk.rows], v [n][wv.rows] = rmsnorm(x [n][dim]) . W^T (+ bias when not null)
  // for W = wq, wk, wv; xb [n][dim] is scratch (it holds rmsnorm(x) after the default).
  virtual void norm_qkv(const float* x, const Weight& norm, float eps, int n, const Weight& wq, const Weight* bq, const Weight& wk,
                        const Weight* bk, const Weight& wv, const Weight* bv, float* xb, float* q, float* k, float* v) {
    rmsnorm(x, norm, n, eps, xb);
    matmul(xb, n, wq, bq, q);
    matmul(xb, n, wk, bk, k);
    matmul(xb, n, wv, bv, v);
  }
  // rope() of q [n][n_heads][head_dim] and of k [n][n_kv_heads][head_dim] in place, then
  // kv_write(k, v) of one layer at positions pos0.. of `seq`.
  virtual void rope_kv_write(KvCache& kv, int seq, int layer, int pos0, int n, float* q, int n_heads, float* k, const float* v,
                             int n_kv_heads, int head_dim, const float* inv_freq) {
    rope(q, n, n_heads, head_dim, pos0, inv_freq);
    rope(k, n, n_kv_heads, head_dim, pos0, inv_freq);
    kv_write(kv, seq, layer, pos0, n, k, v);
  }
  // y[n][w.rows] += x[n][w.cols] . w^T (the residual add); scratch [n][w.rows].
  virtual void matmul_add(const float* x, int n, const Weight& w, float* y, float* scratch) {
    matmul(x, n, w, nullptr, scratch);
    add(y, scratch, static_cast<size_t>(n) * w.rows);
  }
  // y[n][w.rows] = residual[n][w.rows] + x[n][w.cols] . w^T: matmul_add into another array (y is
  // neither residual nor x), bit for bit what matmul_add leaves in residual; scratch [n][w.rows].
  virtual void matmul_add_to(const float* x, int n, const Weight& w, const float* residual, float* y, float* scratch) {
    (void)scratch;
    matmul(x, n, w, nullptr, y);
    add(y, residual, static_cast<size_t>(n) * w.rows);  // addition commutes: residual + product, as matmul_add
  }
  // out[n][gate.rows] = silu(rmsnorm(x) . gate^T) * (rmsnorm(x) . up^T) for x [n][dim]; xb [n][dim]
  // and up_scratch [n][up.rows] are scratch.
  virtual void norm_swiglu(const float* x, const Weight& norm, float eps, int n, const Weight& gate, const Weight& up, float* xb,
                           float* up_scratch, float* out) {
    rmsnorm(x, norm, n, eps, xb);
    matmul(xb, n, gate, nullptr, out);
    matmul(xb, n, up, nullptr, up_scratch);
    swiglu(out, up_scratch, static_cast<size_t>(n) * gate.rows, out);
  }
  // The MLP sublayer: x[n][dim] += down(norm_swiglu(x)); xb [n][dim], up_scratch and gate_out
  // [n][gate.rows] are scratch.
  virtual void mlp(float* x, const Weight& norm, float eps, int n, const Weight& gate, const Weight& up, const Weight& down,
                   float* xb, float* up_scratch, float* gate_out) {
    norm_swiglu(x, norm, eps, n, gate, up, xb, up_scratch, gate_out);
    matmul_add(gate_out, n, down, x, xb);
  }

  // Stores k, v [n][n_kv_heads][head_dim] of one layer at positions pos0.. of `seq` (reserved in kv).
  virtual void kv_write(KvCache& kv, int seq, int layer, int pos0, int n, const float* k, const float* v) = 0;
  // Completes kv_write on the host: afterwards the host KvCache holds every position written so far
  // (a device backend may defer that write-through to here, cuda/). The forward pass calls it
  // before anything on the host reads the cache and before forward() returns.
  virtual void kv_flush(KvCache& kv) = 0;
  // A hint that the forward pass wrote its last position for now (the lm_head follows): a backend
  // that defers kv_write may start moving what it holds to the host, for a kv_flush soon after.
  virtual void kv_written(KvCache& kv) { (void)kv; }
  // Causal attention over the paged cache: out[n][n_heads][head_dim] for q[n][n_heads][head_dim],
  // token t (position pos0 + t) attending to positions [0, pos0 + t] of `seq`; query head h reads
  // KV head h / (n_heads / n_kv_heads) (GQA); scores scaled by 1/sqrt(head_dim).
  virtual void attention(const KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out) = 0;
  // Sparse decode attention (prhs/decode_attention.h) selects blocks on the host; this attends the
  // chosen blocks of one decode token at position context - 1 of `seq` where q [n_heads][head_dim]
  // and out [n_heads][head_dim] live. Null (the default): they are host memory and the policy
  // attends on the host. A backend whose activations are not host memory must override it.
  virtual std::unique_ptr<prhs::BlockAttention> block_attention(const KvCache& kv, int seq, int layer, int context, int n_heads,
                                                                const float* q, float* out) {
    (void)kv, (void)seq, (void)layer, (void)context, (void)n_heads, (void)q, (void)out;
    return nullptr;
  }
};

}  // namespace rl
