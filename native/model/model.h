// A loaded Llama-family model: its weights, its paged KV cache, the backend that runs the ops,
// and the forward pass (forward.cc). Every method throws std::runtime_error with a message meant
// for the user on bad input (unknown sequence, token id out of range, context full, ...).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "kv/kv_cache.h"
#include "model/spec.h"
#include "model/weights.h"
#include "prhs/decode_attention.h"

namespace rl {

enum class LogitsWanted { None, Last, All };

struct ModelStats {
  uint64_t tokens_forwarded = 0;
  int kv_blocks_in_use = 0;
  int kv_blocks_capacity = 0;
  size_t weight_bytes = 0;
  const char* backend = "";
  std::string backend_detail;  // Backend::detail()
};

// Decode layers whose sparse attention was written early (Model::settle_early): how many, and how
// many of them the selection then changed, so that their rest was run again.
struct EarlyStats {
  long layers = 0, redone = 0;
};

class Model {
 public:
  Model(const ModelSpec& spec, std::unique_ptr<Backend> backend);

  const ModelArch& arch() const { return spec_.arch; }
  KvCache& kv() { return *kv_; }

  int new_sequence() { return kv_->new_sequence(); }
  int fork_sequence(int seq) { return kv_->fork_sequence(seq); }
  void free_sequence(int seq) { kv_->free_sequence(seq); }
  void truncate_sequence(int seq, int length) { kv_->truncate(seq, length); }
  int sequence_length(int seq) const { return kv_->length(seq); }

  // Appends tokens[n] to `seq` and runs them through the model. `logits` receives [n][vocab]
  // (All), [vocab] (Last) or nothing (None). On error the sequence is left as it was.
  void forward(int seq, const int32_t* tokens, int n, LogitsWanted wanted, float* logits);

  ModelStats stats() const;
  const EarlyStats& early_stats() const { return early_stats_; }

  // Per-file KV segments (segments.cc, docs/kv-cache.md). CPU backend only.
  // Appends a span laid out as kv_export writes it ([layers][keys, values][count][kv_heads][head_dim]),
  // prefilled at positions from.., to `seq`, its keys re-rotated to the positions they take there.
  void append_rotated(int seq, const float* span, int count, int from);
  // Runs tokens[n] again at their committed positions[n] (strictly increasing) of `seq`, attending
  // densely over the sequence as it is, and overwrites their keys and values in every layer.
  void recompute(int seq, const int32_t* tokens, const int32_t* positions, int n);
  // The attention tokens[n] (e.g. the question) would pay to each position of `seq`: the probability
  // summed over layers, query heads and the n tokens, [length(seq)]. Runs them on a fork (freed), densely.
  std::vector<float> attention_mass(int seq, const int32_t* tokens, int n);

  // Sparse decode attention (PrHS or a baseline) for the decode steps that follow, until replaced;
  // null: dense. CPU backend only (it reads the cache's host blocks).
  void set_decode_attention(std::unique_ptr<prhs::DecodeAttention> policy);
  const prhs::DecodeAttention* decode_attention() const { return decode_attention_.get(); }

 private:
  // LM-head rows computed at once when every position's logits are wanted.
  static constexpr int kLogitRows = 8;

  void forward_chunk(int seq, const int32_t* tokens, int n, int pos0, LogitsWanted wanted, float* logits);
  // The attention of one layer for q [n][heads][head_dim] at positions pos0.. of `seq` (already
  // written to the cache): the one place a sparse policy (PrHS) replaces dense attention. True:
  // `out` was written early and the selection waits in early_ (settle_early).
  bool attend(int layer, const float* q, int seq, int pos0, int n, float* out);
  // The rest of a layer after its attention: x_out = x_ + o_proj(att_) (in place where x_out is x_),
  // then the MLP sublayer on x_out.
  void layer_tail(const LayerWeights& lw, int n, float* x_out);
  // Completes the selection of the layer in early_, if any: its rest ran from the outputs written
  // early into x_early_, which becomes the residual stream where they stand; else it is redone
  // in place from the outputs the selection wrote.
  void settle_early();
  // Drops early_ unsettled (a forward pass that failed).
  void drop_early();
  // Whether layer's selection will likely take what prepare() started (its trust, and no reuse gate
  // passed narrowly at the last step), and the lesson of one that did or did not.
  bool early_likely(int layer);
  void early_learn(int layer, bool took_prepared);
  // The host's copy of a decode layer's q [heads][head_dim] for a selection on `device`.
  const float* host_query(prhs::BlockAttention& device, const float* q);
  void lm_head(const float* x_normed, int n, float* logits);
  // Adds the attention probabilities of q [n][heads][head_dim] at positions pos0.. to *attention_mass_ (segments.cc).
  void observe_attention(int layer, const float* q, int seq, int pos0, int n);

  ModelSpec spec_;
  WeightStore store_;
  const ModelWeights& w_;
  std::unique_ptr<Backend> backend_;
  // Tokens run through the layers at once; longer inputs are split into chunks of this size.
  const int chunk_;
  std::unique_ptr<KvCache> kv_;
  std::vector<float> inv_freq_;  // [head_dim/2]
  uint64_t tokens_forwarded_ = 0;
  std::unique_ptr<prhs::DecodeAttention> decode_attention_;
  std::vector<float>* attention_mass_ = nullptr;  // set while attention_mass() runs: [positions]
  // A decode layer whose sparse attention a device wrote before the host had q to confirm its
  // selection (DecodeAttention::expects_prepared, BlockAttention::write_early), so that the device
  // runs the rest of the layer while the host waits for q: the selection is completed (and the
  // rest kept or redone) before the next layer reads the residual stream.
  struct EarlyLayer {
    int layer = -1, seq = 0, pos0 = 0;
    std::unique_ptr<prhs::BlockAttention> device;
  };
  EarlyLayer early_;
  EarlyStats early_stats_;
  // [layer] 0..3: up when that layer's selection took what prepare() started, down when it did not
  // (the reuse gate tends to keep its answer: random weights fail it every step); early at 2 and up.
  std::vector<signed char> early_trust_;

  // Activations for one chunk, allocated once by the backend (shapes for n <= chunk_ tokens).
  float* x_;       // [n][hidden]        the residual stream
  float* xb_;      // [n][hidden]        normed input of a sublayer / its output
  float* q_;       // [n][heads][head_dim]
  float* k_;       // [n][kv_heads][head_dim]
  float* v_;       // [n][kv_heads][head_dim]
  float* att_;     // [n][heads][head_dim]
  float* gate_;    // [n][intermediate]
  float* up_;      // [n][intermediate]
  float* logits_;  // [kLogitRows][vocab]
  float* x_early_ = nullptr;   // [n][hidden] the residual stream after an early layer (allocated at the first)
  std::vector<float> q_copy_;  // [heads][head_dim] where the backend does not copy q to the host itself
};

}  // namespace rl
