// Per-file KV segments (the SamKV idea, arXiv 2508.11661; docs/kv-cache.md "Segments"):
//
//   - a segment (one file's tokens) is prefilled on its own after the prompt head and exported;
//   - append_rotated() places it anywhere in a sequence: keys carry RoPE of the position they were
//     prefilled at, so each key is rotated back by its old angle and forward by its new one, with
//     the forward pass's own rope op and angles, which makes a moved key equal (to rounding) the
//     key a prefill at the new position computes; values carry no position and are copied;
//   - recompute() runs chosen tokens again at their places with dense attention over the
//     assembled sequence, so their keys and values see the segments before them;
//   - attention_mass() measures where the question attends in the assembled sequence, so the
//     positions it reads most can be the ones recomputed (the SamKV idea of a query-aware choice).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/dot.h"
#include "kv/kv_io.h"
#include "model/model.h"

namespace rl {
namespace {

void require_cpu(const Backend& backend, const char* what) {
  if (std::string(backend.name()) != "cpu") {
    throw std::runtime_error(std::string(what) + ": KV segment assembly runs on the cpu backend only; this model runs on " + backend.name());
  }
}

}  // namespace

void Model::append_rotated(int seq, const float* span, int count, int from) {
  require_cpu(*backend_, "append_rotated");
  const KvCacheShape& shape = kv_->shape();
  const int to = kv_->length(seq);  // throws for an unknown sequence
  if (count < 0 || from < 0) throw std::runtime_error("append_rotated: count and from must not be negative");
  if (to + count > spec_.context_tokens) {
    throw std::runtime_error("append_rotated: context full: the sequence holds " + std::to_string(to) + " tokens and " + std::to_string(count) +
                             " more would exceed the context of " + std::to_string(spec_.context_tokens) + " tokens");
  }
  const int layers = shape.n_layers, kv_heads = shape.n_kv_heads, hd = shape.head_dim;
  const size_t position_floats = static_cast<size_t>(kv_heads) * hd;  // one position of one layer
  std::vector<float> moved(span, span + kv_span_floats(shape, count));  // [layers][2][count][kv_heads][hd]
  std::vector<float> key(layers * position_floats);                      // [layers * kv_heads][hd]: one position
  for (int t = 0; t < count; t++) {
    // Every layer's key of position t at once, so the angles are computed once per position.
    for (int l = 0; l < layers; l++) {
      const float* k = moved.data() + (static_cast<size_t>(l) * 2 * count + t) * position_floats;
      std::copy(k, k + position_floats, key.data() + l * position_floats);
    }
    // R(-θ(from + t)) undoes the prefill's rotation exactly as it was computed, R(θ(to + t)) applies
    // the new one exactly as a prefill at to + t would (angles: position * inv_freq in float32).
    backend_->rope(key.data(), 1, layers * kv_heads, hd, -(from + t), inv_freq_.data());
    backend_->rope(key.data(), 1, layers * kv_heads, hd, to + t, inv_freq_.data());
    for (int l = 0; l < layers; l++) {
      float* k = moved.data() + (static_cast<size_t>(l) * 2 * count + t) * position_floats;
      std::copy(key.data() + l * position_floats, key.data() + (l + 1) * position_floats, k);
    }
  }
  kv_import(*kv_, seq, count, moved.data());  // throws, the sequence unchanged, when out of blocks
}

void Model::recompute(int seq, const int32_t* tokens, const int32_t* positions, int n) {
  require_cpu(*backend_, "recompute");
  const int length = kv_->length(seq);
  if (n <= 0) return;
  for (int i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= spec_.arch.vocab_size) {
      throw std::runtime_error("recompute: token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) + " is outside the vocabulary");
    }
    if (positions[i] < 0 || positions[i] >= length || (i > 0 && positions[i] <= positions[i - 1])) {
      throw std::runtime_error("recompute: positions must increase strictly and lie inside the sequence (length " + std::to_string(length) +
                               "), found " + std::to_string(positions[i]) + " at index " + std::to_string(i));
    }
  }
  kv_->make_private(seq, positions[0], positions[n - 1] + 1);  // throws, nothing changed, when out of blocks
  // Recomputed tokens attend densely, even one at a time (a sparse decode policy is for decoding).
  std::unique_ptr<prhs::DecodeAttention> sparse = std::move(decode_attention_);
  try {
    // Runs of consecutive positions go through the layers together, in position order: a run sees
    // the recomputed keys and values of the runs before it in every layer, as chunked prefill does.
    for (int i = 0; i < n;) {
      int run = 1;
      while (i + run < n && run < chunk_ && positions[i + run] == positions[i] + run) run++;
      forward_chunk(seq, tokens + i, run, positions[i], LogitsWanted::None, nullptr);
      i += run;
    }
  } catch (...) {
    decode_attention_ = std::move(sparse);
    throw;
  }
  decode_attention_ = std::move(sparse);
  kv_->refresh_summaries(seq, positions[0], positions[n - 1] + 1);
  tokens_forwarded_ += n;
}

std::vector<float> Model::attention_mass(int seq, const int32_t* tokens, int n) {
  require_cpu(*backend_, "attention_mass");
  const int length = kv_->length(seq);
  std::vector<float> mass(static_cast<size_t>(length) + n, 0.0f);  // [positions], the probe's own included
  const int probe = kv_->fork_sequence(seq);
  std::unique_ptr<prhs::DecodeAttention> sparse = std::move(decode_attention_);  // measured densely
  attention_mass_ = &mass;
  try {
    forward(probe, tokens, n, LogitsWanted::None, nullptr);
  } catch (...) {
    attention_mass_ = nullptr;
    decode_attention_ = std::move(sparse);
    kv_->free_sequence(probe);
    throw;
  }
  attention_mass_ = nullptr;
  decode_attention_ = std::move(sparse);
  kv_->free_sequence(probe);
  mass.resize(length);
  return mass;
}

void Model::observe_attention(int layer, const float* q, int seq, int pos0, int n) {
  const KvCacheShape& shape = kv_->shape();
  const int hd = shape.head_dim, bs = shape.block_size, heads = spec_.arch.num_heads, group = heads / shape.n_kv_heads;
  const std::vector<int>& blocks = kv_->blocks(seq);
  const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));  // as cpu_attention
  std::vector<float> p;                                                                // [positions] of one (token, head)
  std::vector<float>& mass = *attention_mass_;
  for (int t = 0; t < n; t++) {
    const int positions = pos0 + t + 1;
    p.resize(positions);
    for (int h = 0; h < heads; h++) {
      const float* qh = q + (static_cast<size_t>(t) * heads + h) * hd;  // [hd]
      float max = -INFINITY;
      for (int pos = 0; pos < positions; pos++) {
        const float* k = kv_->keys(layer, blocks[pos / bs], h / group) + (pos % bs) * hd;
        p[pos] = dot_f32(qh, k, hd) * scale;
        max = std::max(max, p[pos]);
      }
      double sum = 0;
      for (int pos = 0; pos < positions; pos++) sum += p[pos] = std::exp(p[pos] - max);
      for (int pos = 0; pos < positions; pos++) mass[pos] += static_cast<float>(p[pos] / sum);
    }
  }
}

}  // namespace rl
