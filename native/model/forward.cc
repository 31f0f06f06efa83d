// The Llama-family forward pass (Llama 2/3, Mistral, Qwen2), one chunk of tokens at a time:
//
//   x = embed(tokens)
//   for each layer:
//     h = x + o_proj(attention(rope(q_proj(norm(x))), rope(k_proj(norm(x))), v_proj(norm(x))))
//     x = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))
//   logits = lm_head(norm(x))
//
// Shapes are [tokens][features]; d = hidden, f = intermediate, hd = head_dim.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "model/model.h"
#include "model/rope_freq.h"
#include "prhs/kv_cache_blocks.h"

namespace rl {
namespace {

// The spec, once checked for what the forward pass and the stack buffers rely on.
const ModelSpec& checked(const ModelSpec& spec) {
  const ModelArch& a = spec.arch;
  if (a.hidden_size <= 0 || a.intermediate_size <= 0 || a.num_layers <= 0 || a.num_heads <= 0 || a.num_kv_heads <= 0 ||
      a.head_dim <= 0 || a.vocab_size <= 0 || a.max_positions <= 0) {
    throw std::runtime_error("model spec: every dimension must be positive");
  }
  if (a.num_heads % a.num_kv_heads != 0) throw std::runtime_error("model spec: num_heads must be a multiple of num_kv_heads");
  if (a.head_dim % 2 != 0 || a.head_dim > kMaxHeadDim) throw std::runtime_error("model spec: head_dim must be even and at most " + std::to_string(kMaxHeadDim));
  if (spec.kv_block_size <= 0 || spec.kv_block_size > kMaxBlockSize) throw std::runtime_error("model spec: kvBlockSize must lie in [1, " + std::to_string(kMaxBlockSize) + "]");
  if (spec.context_tokens <= 0 || spec.context_tokens > a.max_positions) throw std::runtime_error("model spec: contextTokens must lie in [1, maxPositions]");
  if (spec.threads < 0 || spec.kv_blocks < 0) throw std::runtime_error("model spec: threads and kvBlocks must not be negative");
  return spec;
}

int default_kv_blocks(const ModelSpec& spec) {
  const int per_sequence = (spec.context_tokens + spec.kv_block_size - 1) / spec.kv_block_size;
  return spec.kv_blocks > 0 ? spec.kv_blocks : 4 * per_sequence;
}

}  // namespace

Model::Model(const ModelSpec& spec, std::unique_ptr<Backend> backend)
    : spec_(checked(spec)), store_(spec_), w_(store_.weights()), backend_(std::move(backend)),
      chunk_(backend_->prefill_chunk()) {
  const ModelArch& a = spec_.arch;
  kv_ = std::make_unique<KvCache>(KvCacheShape{a.num_layers, a.num_kv_heads, a.head_dim, spec_.kv_block_size, default_kv_blocks(spec_)});
  inv_freq_ = rope_inv_freq(a.head_dim, a.rope_theta, a.rope_scaling);
  const size_t n = chunk_, d = a.hidden_size, q_dim = static_cast<size_t>(a.num_heads) * a.head_dim;
  const size_t kv_dim = static_cast<size_t>(a.num_kv_heads) * a.head_dim, f = a.intermediate_size;
  x_ = backend_->alloc(n * d);
  xb_ = backend_->alloc(n * d);
  q_ = backend_->alloc(n * q_dim);
  k_ = backend_->alloc(2 * n * kv_dim);  // k [n][kv_dim], then v: one copy moves both (cuda/ kv_write)
  v_ = k_ + n * kv_dim;
  att_ = backend_->alloc(n * q_dim);
  gate_ = backend_->alloc(n * f);
  up_ = backend_->alloc(n * f);
  logits_ = backend_->alloc(static_cast<size_t>(kLogitRows) * a.vocab_size);
}

void Model::forward(int seq, const int32_t* tokens, int n, LogitsWanted wanted, float* logits) {
  const ModelArch& a = spec_.arch;
  const int length = kv_->length(seq);  // throws for an unknown sequence
  if (n < 0) throw std::runtime_error("forward: negative token count");
  if (n == 0 && wanted == LogitsWanted::Last) throw std::runtime_error("forward: no tokens, so there are no last logits");
  for (int i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= a.vocab_size) {
      throw std::runtime_error("forward: token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(a.vocab_size) + ")");
    }
  }
  if (length + n > spec_.context_tokens) {
    throw std::runtime_error("forward: context full: the sequence holds " + std::to_string(length) + " tokens and " + std::to_string(n) +
                             " more would exceed the context of " + std::to_string(spec_.context_tokens) + " tokens");
  }
  kv_->reserve(seq, n);  // throws when out of KV blocks, before anything changed
  try {
    for (int start = 0; start < n; start += chunk_) {
      const int count = std::min(chunk_, n - start);
      const bool last_chunk = start + count == n;
      const LogitsWanted chunk_wanted = wanted == LogitsWanted::All ? LogitsWanted::All : (last_chunk ? wanted : LogitsWanted::None);
      float* chunk_logits = wanted == LogitsWanted::All ? logits + static_cast<size_t>(start) * a.vocab_size : logits;
      forward_chunk(seq, tokens + start, count, length + start, chunk_wanted, chunk_logits);
    }
    backend_->kv_flush(*kv_);  // the host cache is whole again for forks, kv_io and the next reserve
  } catch (...) {
    drop_early();
    try {
      backend_->kv_flush(*kv_);  // no write left pending past the truncation below
    } catch (...) {
      // the first error is the one to report; the backend dropped its pending writes
    }
    kv_->truncate(seq, length);  // drops the reserved positions
    throw;
  }
  kv_->commit(seq, n);
  tokens_forwarded_ += n;
}

void Model::forward_chunk(int seq, const int32_t* tokens, int n, int pos0, LogitsWanted wanted, float* logits) {
  const ModelArch& a = spec_.arch;
  const size_t d = a.hidden_size;
  Backend& b = *backend_;

  b.embed(w_.embed, tokens, n, x_);  // x [n][d]
  for (int l = 0; l < a.num_layers; l++) {
    settle_early();  // before x is read again
    const LayerWeights& lw = w_.layers[l];
    const bool bias = a.attention_bias;
    // Attention sublayer (backend.h's fused ops; the comments say what the defaults compute).
    b.norm_qkv(x_, lw.attn_norm, a.rms_norm_eps, n, lw.q, bias ? &lw.q_bias : nullptr, lw.k, bias ? &lw.k_bias : nullptr, lw.v,
               bias ? &lw.v_bias : nullptr, xb_, q_, k_, v_);  // xb [n][d] = norm(x); q [n][heads][hd], k, v [n][kv_heads][hd]
    b.rope_kv_write(*kv_, seq, l, pos0, n, q_, a.num_heads, k_, v_, a.num_kv_heads, a.head_dim, inv_freq_.data());  // q, k rotated
    const bool early = attend(l, q_, seq, pos0, n, att_);  // att [n][heads][hd]
    if (early && !x_early_) x_early_ = b.alloc(static_cast<size_t>(chunk_) * d);
    layer_tail(lw, n, early ? x_early_ : x_);
  }
  settle_early();

  if (wanted == LogitsWanted::None) return;
  if (wanted == LogitsWanted::Last) {
    b.rmsnorm(x_ + (n - 1) * d, w_.norm, 1, a.rms_norm_eps, xb_);  // xb [1][d]
    lm_head(xb_, 1, logits);                                        // logits [vocab]
    return;
  }
  b.rmsnorm(x_, w_.norm, n, a.rms_norm_eps, xb_);  // xb [n][d]
  for (int start = 0; start < n; start += kLogitRows) {
    const int rows = std::min(kLogitRows, n - start);
    lm_head(xb_ + start * d, rows, logits + static_cast<size_t>(start) * a.vocab_size);  // logits [rows][vocab]
  }
}

void Model::layer_tail(const LayerWeights& lw, int n, float* x_out) {
  const ModelArch& a = spec_.arch;
  Backend& b = *backend_;
  if (x_out == x_) b.matmul_add(att_, n, lw.o, x_, xb_);  // x [n][d] += o_proj(att) (xb [n][d] scratch)
  else b.matmul_add_to(att_, n, lw.o, x_, x_out, xb_);    // x_out [n][d] = x + o_proj(att)
  // MLP sublayer.
  // x_out [n][d] += down_proj(silu(gate(norm(x))) * up(norm(x))) (xb [n][d], up, gate [n][f] scratch)
  b.mlp(x_out, lw.ffn_norm, a.rms_norm_eps, n, lw.gate, lw.up, lw.down, xb_, up_, gate_);
}

void Model::settle_early() {
  if (!early_.device) return;
  EarlyLayer e = std::move(early_);
  early_ = EarlyLayer{};
  const prhs::KvCacheBlocks blocks(*kv_, e.seq, e.layer, e.pos0 + 1);
  try {
    decode_attention_->attend(e.layer, host_query(*e.device, q_), blocks, *e.device);  // q_ still holds e.layer's q
  } catch (...) {
    decode_attention_->discard_prepared();  // its heads refer to e.device
    throw;
  }
  early_stats_.layers++;
  early_learn(e.layer, decode_attention_->took_prepared());
  if (e.device->early_write_stands()) {
    std::swap(x_, x_early_);
    return;
  }
  early_stats_.redone++;
  layer_tail(w_.layers[e.layer], 1, x_);  // from the outputs the selection wrote
}

bool Model::early_likely(int layer) {
  if (early_trust_.empty()) early_trust_.assign(spec_.arch.num_layers, 2);
  if (early_trust_[layer] < 2) return false;
  // A reused set whose gate passed by little at the last step may fail it now: q drifts from the anchor's.
  constexpr double kGateSlack = 0.02;
  const int n_kv = spec_.arch.num_kv_heads;
  const std::vector<prhs::HeadRecord>& last = decode_attention_->records();
  for (int h = 0; h < n_kv; h++) {
    const prhs::HeadRecord& r = last[static_cast<size_t>(layer) * n_kv + h];
    if ((r.source == prhs::Source::Reused || r.source == prhs::Source::Shared) && r.margin < kGateSlack) return false;
  }
  return true;
}

void Model::early_learn(int layer, bool took_prepared) {
  signed char& trust = early_trust_[layer];
  trust = took_prepared ? std::min<signed char>(trust + 1, 3) : std::max<signed char>(trust - 1, 0);
}

void Model::drop_early() {
  if (!early_.device) return;
  if (decode_attention_) decode_attention_->discard_prepared();  // before the heads' device goes
  early_ = EarlyLayer{};
}

const float* Model::host_query(prhs::BlockAttention& device, const float* q) {
  if (const float* fetched = device.host_query()) return fetched;
  q_copy_.resize(static_cast<size_t>(spec_.arch.num_heads) * spec_.arch.head_dim);  // [heads][hd]
  backend_->copy_to_host(q, q_copy_.size(), q_copy_.data());
  return q_copy_.data();
}

bool Model::attend(int layer, const float* q, int seq, int pos0, int n, float* out) {
  if (decode_attention_ && n == 1) {  // a decode step: the sparse policy picks the blocks
    const int n_heads = spec_.arch.num_heads;
    // A device backend starts the copy of q to the host here, before the write-through's wait.
    if (auto device = backend_->block_attention(*kv_, seq, layer, pos0 + 1, n_heads, q, out)) {
      // q and out live on the device: the host selects from its copy of q and the host cache, whose
      // keys of this token it needs only where it reads keys or summaries itself (else the write-
      // through completes at the end of forward()).
      if (device->reads_host_cache() || decode_attention_->reads_host_keys(device->offers_bounds())) backend_->kv_flush(*kv_);
      const prhs::KvCacheBlocks blocks(*kv_, seq, layer, pos0 + 1);
      try {
        decode_attention_->prepare(layer, blocks, *device);  // what it can start before q is on the host
        // Where the selection will likely take what prepare() started, the rest of the layer goes
        // on from it while q travels; settle_early() completes the selection.
        const bool expected = decode_attention_->expects_prepared();
        if (expected && early_likely(layer) && device->write_early()) {
          early_ = EarlyLayer{layer, seq, pos0, std::move(device)};
          return true;
        }
        decode_attention_->attend(layer, host_query(*device, q), blocks, *device);
        if (expected) early_learn(layer, decode_attention_->took_prepared());
      } catch (...) {
        decode_attention_->discard_prepared();  // its heads refer to `device`
        throw;
      }
    } else {
      backend_->kv_flush(*kv_);  // it selects from the host cache, this token's keys included
      const prhs::KvCacheBlocks blocks(*kv_, seq, layer, pos0 + 1);
      decode_attention_->attend(layer, q, blocks, out);
    }
    return false;
  }
  backend_->attention(*kv_, seq, layer, pos0, n, spec_.arch.num_heads, q, out);
  if (attention_mass_) {  // segments.cc: attention_mass() reads the host cache
    backend_->kv_flush(*kv_);
    observe_attention(layer, q, seq, pos0, n);
  }
  return false;
}

void Model::set_decode_attention(std::unique_ptr<prhs::DecodeAttention> policy) { decode_attention_ = std::move(policy); }

void Model::lm_head(const float* x_normed, int n, float* logits) {
  backend_->kv_written(*kv_);                                                          // every layer wrote
  backend_->matmul_for_host(x_normed, n, w_.lm_head, logits_);                         // [n][vocab]
  backend_->kv_flush(*kv_);  // while the product runs
  backend_->copy_to_host(logits_, static_cast<size_t>(n) * spec_.arch.vocab_size, logits);
}

ModelStats Model::stats() const {
  ModelStats s;
  s.tokens_forwarded = tokens_forwarded_;
  s.kv_blocks_in_use = kv_->blocks_in_use();
  s.kv_blocks_capacity = kv_->shape().n_blocks;
  s.weight_bytes = w_.bytes;
  s.backend = backend_->name();
  s.backend_detail = backend_->detail();
  return s;
}

}  // namespace rl
