// Sparse decode attention's device side: the prhs interfaces (prhs/block_attention.h) over the
// backend's device mirror, for one layer of a decode step (block_attention_cuda.cuh).
#include "block_attention_cuda.cuh"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include "block_bounds.cuh"
#include "chosen_attention.cuh"
#include "cuda_check.cuh"
#include "policy_timing.h"
#include "prhs/block_attention.h"
#include "prhs/log_math.h"
#include "switches.h"

namespace rl::cuda {
namespace {

class CudaHeadAttention;

}  // namespace

// A layer's KV heads whose work CudaBlockAttention launches together: heads started
// (HeadAttention::start) folded in one launch for all (launch()), outputs written in one (finish()).
// REPO_LENS_CUDA_FOLD_TOGETHER=0 / REPO_LENS_CUDA_WRITE_TOGETHER=0: each head on its own (A/B).
struct Together {
  bool fold = true, write = true;
  std::vector<CudaHeadAttention*> to_fold;  // started, not folded yet
  std::vector<CudaHeadAttention*> to_write;  // heads whose output is to be written
};

namespace {

// REPO_LENS_CUDA_PREFETCH=0: the prefetch hints are ignored, so every result is waited for on its
// own (A/B timing of the one wait per layer and phase, and diagnosis).
bool prefetch_enabled() {
  static const bool enabled = switched_on("REPO_LENS_CUDA_PREFETCH");
  return enabled;
}

// One KV head's share of a sparse decode step: the blocks the host's selection adds are folded
// into the device state when the host asks for the selected mass (lse) or the output (write).
class CudaHeadAttention final : public prhs::HeadAttention {
 public:
  using Layer = HeadAttentionLayer;

  CudaHeadAttention(const Layer& layer, int kv_head)
      : l_(layer), kv_head_(kv_head), row_(chosen_attention_state_floats(layer.kv.head_dim)),
        blocks_(layer.blocks + size_t(kv_head) * layer.n_logical), blocks_host_(layer.blocks_host + size_t(kv_head) * layer.n_logical),
        sent_(layer.sent[kv_head]), state_(layer.state + size_t(kv_head) * layer.group * row_),
        state_host_(layer.state_host + size_t(kv_head) * layer.group * row_), copied_(layer.copied[kv_head]), lse_(layer.group) {
    const Waiting waiting(PolicyTiming::Other);
    RL_CUDA_CHECK(cudaEventSynchronize(sent_));  // the ids of two layers ago have left blocks_host_ (at once, as a rule)
  }
  ~CudaHeadAttention() override {
    if (queued_) {  // not launched (an error on the way): the layer must not fold it
      std::vector<CudaHeadAttention*>& q = l_.together->to_fold;
      q.erase(std::remove(q.begin(), q.end(), this), q.end());
    }
  }
  void add_block(int b) override {
    pending_.push_back(b);
    lse_valid_ = false;
    reading_ = false;
  }
  void start() override {
    if (l_.together && l_.together->fold && !folded_any_ && staged_ == 0 && !queued_) {
      queued_ = true;  // folded with the layer's other KV heads at CudaBlockAttention::launch
      l_.together->to_fold.push_back(this);
    } else {
      fold();
    }
  }
  // For CudaBlockAttention::launch: the KV head, whether it still waits to be folded, its ids put in
  // its slots of blocks_host_ (their count), and, once launched with the others, its new state.
  int kv_head() const { return kv_head_; }
  bool queued() const { return queued_; }
  void fold_alone() { fold(); }
  int stage_ids() {
    std::copy(pending_.begin(), pending_.end(), blocks_host_);
    return int(pending_.size());
  }
  // written: the launch also wrote this head's output.
  void folded_together(bool written) {
    staged_ = pending_.size();
    pending_.clear();
    folded_any_ = true;
    queued_ = false;
    written_ = written;
  }
  // Whether the output the launch wrote is still the state's (no block folded in since).
  bool written() const { return written_ && pending_.empty(); }
  void prefetch_lse() override {
    if (prefetch_enabled() && !lse_valid_ && !reading_) start_read();
  }
  double lse(int g) override {
    if (!lse_valid_) {
      if (!reading_) start_read();
      {
        const Waiting waiting(PolicyTiming::State);
        RL_CUDA_CHECK(cudaEventSynchronize(copied_));
      }
      for (int i = 0; i < l_.group; i++) {
        const float m = state_host_[size_t(i) * row_ + row_ - 2], sum = state_host_[size_t(i) * row_ + row_ - 1];
        lse_[i] = sum > 0 ? double(m) + std::log(double(sum)) : prhs::kNegInf;
      }
      lse_valid_ = true;
      reading_ = false;
    }
    return lse_[g];
  }
  void write() override {
    fold();
    if (l_.together && l_.together->write) {
      l_.together->to_write.push_back(this);  // CudaBlockAttention::finish writes it
      return;
    }
    chosen_attention_write(state_, l_.group, l_.kv.head_dim, l_.out + size_t(head0()) * l_.kv.head_dim, l_.stream);
  }

 private:
  int head0() const { return kv_head_ * l_.group; }
  // Adds the pending blocks to the state (one launch; the first one starts the state, even empty).
  // Each add takes the next slots of blocks_ / blocks_host_ (a selection adds a block once, so they
  // fit): the host never rewrites ids an earlier copy may still be reading.
  void fold() {
    if (queued_) {  // folded on its own after all
      queued_ = false;
      std::vector<CudaHeadAttention*>& q = l_.together->to_fold;
      q.erase(std::remove(q.begin(), q.end(), this), q.end());
    }
    if (pending_.empty() && folded_any_) return;
    written_ = false;
    const size_t n = pending_.size();
    if (staged_ + n > size_t(l_.n_logical)) {  // not for a selection; kept safe all the same
      const Waiting waiting(PolicyTiming::Other);
      RL_CUDA_CHECK(cudaStreamSynchronize(l_.stream));
      staged_ = 0;
    }
    int* ids = blocks_ + staged_;
    if (n > 0) {
      if (l_.blocks_held) l_.blocks_held->clear();  // (the next launch() copies them all again)
      std::copy(pending_.begin(), pending_.end(), blocks_host_ + staged_);
      RL_CUDA_CHECK(cudaMemcpyAsync(ids, blocks_host_ + staged_, n * sizeof(int), cudaMemcpyHostToDevice, l_.stream));
      RL_CUDA_CHECK(cudaEventRecord(sent_, l_.stream));
    }
    chosen_attention_add(l_.kv, kv_head_, l_.context, ids, int(n), head0(), l_.group, l_.scale, l_.q, !folded_any_, state_, l_.stream);
    staged_ += n;
    pending_.clear();
    folded_any_ = true;
  }
  // The state folded so far, copied back without waiting: lse() waits for copied_.
  void start_read() {
    fold();
    RL_CUDA_CHECK(cudaMemcpyAsync(state_host_, state_, size_t(l_.group) * row_ * sizeof(float), cudaMemcpyDeviceToHost, l_.stream));
    RL_CUDA_CHECK(cudaEventRecord(copied_, l_.stream));
    reading_ = true;
  }

  Layer l_;
  int kv_head_, row_;
  int* blocks_;
  int* blocks_host_;
  cudaEvent_t sent_;
  size_t staged_ = 0;  // slots of blocks_ used by this selection
  float* state_;
  float* state_host_;
  cudaEvent_t copied_;
  std::vector<int> pending_;
  bool folded_any_ = false;
  std::vector<double> lse_;
  bool lse_valid_ = false;
  bool reading_ = false;  // a copy of the state is on its way to state_host_
  bool queued_ = false;   // in together->to_fold
  bool written_ = false;  // its output written by the launch that folded it (CudaBlockAttention::launch)
};

// One KV head's block bounds for the host's selection (block_bounds.cuh): computed from the
// mirror's keys and summaries into two device tables; the host reads back scores, per-head sums or
// (for the certificate's expansion) a whole table.
class CudaBlockBounds final : public prhs::BlockBounds {
 public:
  using Layer = BlockBoundsLayer;

  // q_scaled: the host's scaled queries, uploaded; null: the device's copy is already in layer.q
  // (CudaBlockAttention scales q on the device, the host's arithmetic).
  CudaBlockBounds(const Layer& layer, int kv_head, const double* q_scaled)
      : l_(layer), kv_head_(kv_head), q_(layer.q + size_t(kv_head) * layer.group * layer.kv.head_dim),
        tables_(layer.tables + size_t(kv_head) * 2 * layer.group * layer.most), mask_(layer.mask + size_t(kv_head) * layer.most),
        result_(layer.result + size_t(kv_head) * (layer.most + layer.group)),
        result_host_(layer.result_host + size_t(kv_head) * (layer.most + layer.group)), copied_(layer.copied[kv_head]),
        sketched_(layer.sketched ? layer.sketched[kv_head] : nullptr) {
    if (q_scaled) {
      RL_CUDA_CHECK(cudaMemcpyAsync(q_, q_scaled, size_t(l_.group) * l_.kv.head_dim * sizeof(double), cudaMemcpyHostToDevice, l_.stream));
    }
  }
  ~CudaBlockBounds() override {
    if (l_.sketch_bits && scored_ && !asked_sketches_) *l_.sketch_bits = 0;  // that selection did not go on to sketches
    if (apart_) cudaStreamWaitEvent(l_.stream, sketched_, 0);  // (no throw here: an error shows at the stream's next call)
  }
  void bound(int table, const std::vector<char>& mask, int bits) override {
    if (bits) {
      asked_sketches_ = true;
      if (l_.sketch_bits) *l_.sketch_bits = bits;
      if (table == ahead_table_ && bits == ahead_bits_) return;  // every block's bound is made (start_scores)
    }
    join_sketches();
    upload(mask);
    if (bits == 0) block_bounds_minmax(l_.kv, kv_head_, q_, l_.group, mask_, l_.n_blocks, l_.log_fill, at(table), l_.stream);
    else block_bounds_sketch(l_.kv, l_.sketch, kv_head_, q_, l_.group, mask_, l_.n_blocks, bits, at(table), l_.stream);
    started_ = Started::None;
  }
  void prefetch_lse(int table, const std::vector<char>& mask) override {
    if (prefetch_enabled()) start_lse(table, mask);
  }
  void lse(int table, const std::vector<char>& mask, double* lse) override {
    if (!started(Started::Lse, table, mask)) start_lse(table, mask);
    finish_copy(l_.n_blocks, l_.group, lse);
  }
  void prefetch_scores(int table, const std::vector<char>& mask) override {
    if (prefetch_enabled()) start_scores(table, mask);
  }
  void scores(int table, const std::vector<char>& mask, double* score) override {
    if (!started(Started::Scores, table, mask)) start_scores(table, mask);
    finish_copy(0, l_.n_blocks, score);
  }
  // One launch and one wait for a batch of the certificate's expansion (REPO_LENS_CUDA_BATCH_EXPANSION=0:
  // not offered, the expansion folds and reads back the selected mass per block as before).
  bool masses(const std::vector<int>& blocks, double* out) override {
    static const bool enabled = switched_on("REPO_LENS_CUDA_BATCH_EXPANSION");
    if (!enabled) return false;
    const size_t n = blocks.size();
    if (n == 0) return true;
    if (n > l_.most) throw std::runtime_error("cuda backend: more blocks asked for than a sequence has");
    int* ids_host = l_.ids_host + size_t(kv_head_) * l_.most;  // the previous batch's copy is done: it was waited for
    int* ids = l_.ids + size_t(kv_head_) * l_.most;
    double* masses = l_.masses + size_t(kv_head_) * l_.most * l_.group;
    double* masses_host = l_.masses_host + size_t(kv_head_) * l_.most * l_.group;
    std::copy(blocks.begin(), blocks.end(), ids_host);
    RL_CUDA_CHECK(cudaMemcpyAsync(ids, ids_host, n * sizeof(int), cudaMemcpyHostToDevice, l_.stream));
    block_bounds_exact(l_.kv, kv_head_, q_, l_.group, ids, int(n), masses, l_.stream);
    RL_CUDA_CHECK(cudaMemcpyAsync(masses_host, masses, n * l_.group * sizeof(double), cudaMemcpyDeviceToHost, l_.stream));
    RL_CUDA_CHECK(cudaEventRecord(copied_, l_.stream));
    started_ = Started::None;  // copied_ now follows this copy
    {
      const Waiting waiting(PolicyTiming::Masses);
      RL_CUDA_CHECK(cudaEventSynchronize(copied_));
    }
    std::copy(masses_host, masses_host + n * l_.group, out);
    return true;
  }
  void read(int table, double* log_mass) override {  // pageable: rare (a certificate expands)
    join_sketches();
    const Waiting waiting(PolicyTiming::Table);
    RL_CUDA_CHECK(cudaMemcpyAsync(log_mass, at(table), size_t(l_.group) * l_.n_blocks * sizeof(double), cudaMemcpyDeviceToHost, l_.stream));
    RL_CUDA_CHECK(cudaStreamSynchronize(l_.stream));
  }

 private:
  enum class Started { None, Lse, Scores };
  void start_lse(int table, const std::vector<char>& mask) {
    join_sketches();
    upload(mask);
    block_bounds_lse(at(table), l_.group, l_.n_blocks, mask_, result_ + l_.n_blocks, l_.stream);
    start_copy(l_.n_blocks, l_.group, Started::Lse, table);
  }
  void start_scores(int table, const std::vector<char>& mask) {
    join_sketches();
    upload(mask);
    block_bounds_lse(at(table), l_.group, l_.n_blocks, mask_, result_ + l_.n_blocks, l_.stream);
    block_bounds_scores(at(table), l_.group, l_.n_blocks, mask_, result_ + l_.n_blocks, result_, l_.stream);
    start_copy(0, l_.n_blocks, Started::Scores, table);
    scored_ = true;
    if (l_.sketch_bits && *l_.sketch_bits && ahead_bits_ == 0) {  // after the scores' copy on the stream: it does not wait for this
      ahead_table_ = 1 - table, ahead_bits_ = *l_.sketch_bits;
      cudaStream_t on = l_.stream;
      if (l_.sketch_stream) {  // apart: it reads what the stream wrote before the scores' copy
        RL_CUDA_CHECK(cudaStreamWaitEvent(l_.sketch_stream, copied_, 0));
        on = l_.sketch_stream;
      }
      block_bounds_sketch(l_.kv, l_.sketch, kv_head_, q_, l_.group, l_.all, l_.n_blocks, ahead_bits_, at(ahead_table_), on);
      if (l_.sketch_stream) {
        RL_CUDA_CHECK(cudaEventRecord(sketched_, on));
        apart_ = true;
      }
    }
  }
  // The stream's later work on this KV head's tables, q and sketches after the sketches made apart.
  void join_sketches() {
    if (!apart_) return;
    RL_CUDA_CHECK(cudaStreamWaitEvent(l_.stream, sketched_, 0));
    apart_ = false;
  }
  double* at(int table) const { return tables_ + size_t(table) * l_.group * l_.n_blocks; }
  // The policy bounds a mask, then sums over the same mask: it is uploaded once.
  void upload(const std::vector<char>& mask) {
    if (mask == uploaded_) return;
    RL_CUDA_CHECK(cudaMemcpyAsync(mask_, mask.data(), size_t(l_.n_blocks), cudaMemcpyHostToDevice, l_.stream));
    uploaded_ = mask;
  }
  bool started(Started what, int table, const std::vector<char>& mask) const {
    return started_ == what && started_table_ == table && mask == uploaded_;
  }
  void start_copy(size_t from, size_t count, Started what, int table) {
    RL_CUDA_CHECK(cudaMemcpyAsync(result_host_ + from, result_ + from, count * sizeof(double), cudaMemcpyDeviceToHost, l_.stream));
    RL_CUDA_CHECK(cudaEventRecord(copied_, l_.stream));
    started_ = what;
    started_table_ = table;
  }
  void finish_copy(size_t from, size_t count, double* dst) {
    {
      const Waiting waiting(started_ == Started::Scores ? PolicyTiming::Scores : PolicyTiming::Sums);
      RL_CUDA_CHECK(cudaEventSynchronize(copied_));
    }
    std::copy(result_host_ + from, result_host_ + from + count, dst);
    started_ = Started::None;
  }

  Layer l_;
  int kv_head_;
  double* q_;
  double* tables_;
  char* mask_;
  double* result_;
  double* result_host_;
  cudaEvent_t copied_;
  std::vector<char> uploaded_;  // what mask_ holds (this KV head's buffers are this object's while it lives)
  Started started_ = Started::None;  // a result on its way to result_host_
  int started_table_ = -1;
  cudaEvent_t sketched_;  // after the sketches made apart (null: never apart)
  bool scored_ = false, asked_sketches_ = false;  // scores started; a sketch bound asked for
  int ahead_table_ = -1, ahead_bits_ = 0;  // the table start_scores bounded every block's sketch into
  bool apart_ = false;  // those sketches run on l_.sketch_stream, not joined yet
};

// One layer of a decode step's sparse attention. The host's copy of q was started by
// block_attention() (pinned, an event after it); where the backend bounds, q is scaled for them
// on the device (double(q) · 1/sqrt(head_dim), one rounding as on the host) at the first bounds().
class CudaBlockAttention final : public prhs::BlockAttention {
 public:
  using Query = BlockAttentionQuery;
  // setup_start, between: for REPO_LENS_CUDA_TIMING (when block_attention() began; the time since
  // the previous layer's selection ended, < 0: none this step).
  CudaBlockAttention(const CudaHeadAttention::Layer& layer, const CudaBlockBounds::Layer& bounds, bool with_bounds, const Query& query,
                     bool fold_together, bool write_together, double setup_start, double between)
      : layer_(layer), bounds_(bounds), with_bounds_(with_bounds), query_(query), setup_start_(setup_start), between_(between),
        t0_(policy_timing().on ? seconds_now() : 0) {
    together_.fold = fold_together && chosen_attention_heads_supports(layer.kv.head_dim, layer.kv.n_kv_heads);
    together_.write = write_together;
    layer_.together = &together_;
  }
  CudaBlockAttention(const CudaBlockAttention&) = delete;
  CudaBlockAttention& operator=(const CudaBlockAttention&) = delete;
  // Every KV head started (all of them, in order): one copy of their ids, one launch, one merge.
  void launch() override {
    std::vector<CudaHeadAttention*> heads;
    for (CudaHeadAttention* h : together_.to_fold) if (h->queued()) heads.push_back(h);
    together_.to_fold.clear();
    const int n = layer_.kv.n_kv_heads;
    bool all = int(heads.size()) == n;
    for (int i = 0; all && i < n; i++) all = heads[i]->kv_head() == i;
    if (!all) {
      for (CudaHeadAttention* h : heads) h->fold_alone();
      return;
    }
    std::vector<int> counts(n);
    int most = 0;
    for (int i = 0; i < n; i++) most = std::max(most, counts[i] = heads[i]->stage_ids());
    if (!ids_held(counts)) copy_ids(most);
    // The merge writes the outputs too: where the selection adds no block to any KV head (a reused set
    // that does not certify), finish() has nothing left to launch. REPO_LENS_CUDA_WRITE_AT_LAUNCH=0: it
    // does not (A/B).
    static const bool write_at_launch = switched_on("REPO_LENS_CUDA_WRITE_AT_LAUNCH");
    const bool write = write_at_launch && together_.write;
    chosen_attention_heads(layer_.kv, layer_.context, layer_.blocks, layer_.n_logical, counts.data(), layer_.group, layer_.scale,
                           layer_.q, layer_.state, write ? layer_.out : nullptr, layer_.stream);
    for (CudaHeadAttention* h : heads) h->folded_together(write);
    launched_written_ = write;
  }
  // The outputs of every KV head were written by the launch() just before (nothing to launch now).
  // REPO_LENS_CUDA_WRITE_EARLY=0: not offered (the caller waits for q before the rest of the layer).
  bool write_early() override {
    static const bool enabled = switched_on("REPO_LENS_CUDA_WRITE_EARLY");
    wrote_early_ = enabled && launched_written_;
    return wrote_early_;
  }
  bool early_write_stands() const override { return early_stands_; }
  // Whether the layer's device ids already are the staged ones (counts [n_kv_heads]); else they are
  // recorded as what the copy that follows leaves there. REPO_LENS_CUDA_KEEP_IDS=0: never (A/B).
  bool ids_held(const std::vector<int>& counts) {
    static const bool keep = switched_on("REPO_LENS_CUDA_KEEP_IDS");
    std::vector<int> staged;
    for (size_t i = 0; i < counts.size(); i++) {
      const int* ids = layer_.blocks_host + i * layer_.n_logical;
      staged.push_back(counts[i]);
      staged.insert(staged.end(), ids, ids + counts[i]);
    }
    if (keep && layer_.blocks_held && *layer_.blocks_held == staged) return true;
    if (layer_.blocks_held) *layer_.blocks_held = keep ? std::move(staged) : std::vector<int>();
    return false;
  }
  // The staged ids of every KV head (`most` at most each) to the layer's device ids, on the side
  // stream where there is one; the attention's stream waits for them.
  void copy_ids(int most) {
    const int n = layer_.kv.n_kv_heads;
    const size_t pitch = size_t(layer_.n_logical) * sizeof(int);
    cudaStream_t copies = layer_.side ? layer_.side : layer_.stream;
    // On the side stream: after the layer two before is done (the host's staging of these ids alternates
    // between two sets; the device ids are this layer's own, last read by it a step before).
    if (layer_.side) RL_CUDA_CHECK(cudaStreamWaitEvent(layer_.side, layer_.consumed, 0));
    if (most > 0) {
      RL_CUDA_CHECK(cudaMemcpy2DAsync(layer_.blocks, pitch, layer_.blocks_host, pitch, size_t(most) * sizeof(int), n,
                                      cudaMemcpyHostToDevice, copies));
    }
    for (int i = 0; i < n; i++) RL_CUDA_CHECK(cudaEventRecord(layer_.sent[i], copies));
    if (layer_.side) RL_CUDA_CHECK(cudaStreamWaitEvent(layer_.stream, layer_.sent[0], 0));
  }
  // The outputs written: none where the launch wrote every one of them and no block was added since,
  // else one launch where every KV head wrote (their rows are contiguous).
  void finish() override {
    std::vector<CudaHeadAttention*> heads;
    heads.swap(together_.to_write);
    const int n = layer_.kv.n_kv_heads, hd = layer_.kv.head_dim, row = chosen_attention_state_floats(hd);
    std::vector<char> seen(n, 0);
    int distinct = 0;
    bool written = true;
    for (CudaHeadAttention* h : heads) {
      distinct += !seen[h->kv_head()]++;
      written = written && h->written();
    }
    early_stands_ = wrote_early_ && written && distinct == n && int(heads.size()) == n;
    if (distinct == n && int(heads.size()) == n) {
      if (!written) chosen_attention_write(layer_.state, n * layer_.group, hd, layer_.out, layer_.stream);
      return;
    }
    for (CudaHeadAttention* h : heads) {
      if (h->written()) continue;
      const size_t k = size_t(h->kv_head());
      chosen_attention_write(layer_.state + k * layer_.group * row, layer_.group, hd, layer_.out + k * layer_.group * hd, layer_.stream);
    }
  }
  ~CudaBlockAttention() override {
    if (layer_.side) {  // (no throwing here: a failed call shows at the stream's next checked one)
      cudaEventRecord(layer_.consumed, layer_.stream);
      // The stream's next writes of q (the next layer) wait for the side stream's copy of it.
      if (query_.host && !query_.mapped) cudaStreamWaitEvent(layer_.stream, query_.copied, 0);
    }
    PolicyTiming& t = policy_timing();
    if (!t.on) return;
    const double end = seconds_now();
    t.layers++;
    t.attend_s += end - t0_;
    t.last_end = end;
    const int c = t.layer_waits[PolicyTiming::Scores] ? PolicyTiming::Scored
                  : t.layer_waits[PolicyTiming::Sums] || t.layer_waits[PolicyTiming::State] ? PolicyTiming::Certified
                                                                                             : PolicyTiming::Plain;
    t.class_layers[c]++;
    t.class_s[c] += end - setup_start_;
    t.class_wait_s[c] += t.layer_wait_s;
    if (between_ >= 0) t.class_between[c]++, t.class_between_s[c] += between_;
    if (c != PolicyTiming::Plain || q_asked_ == 0) return;
    t.phase_s[PolicyTiming::Setup] += t0_ - setup_start_;
    t.phase_s[PolicyTiming::Prepare] += q_asked_ - t0_;
    t.phase_s[PolicyTiming::QWait] += q_ready_ - q_asked_;
    t.phase_s[PolicyTiming::Decide] += end - q_ready_;
  }
  std::unique_ptr<prhs::HeadAttention> head(int kv_head, const double*) override {
    return std::make_unique<CudaHeadAttention>(layer_, kv_head);
  }
  std::unique_ptr<prhs::BlockBounds> bounds(int kv_head, const double* q_scaled) override {
    if (!with_bounds_) return nullptr;
    if (!query_.scale_on_device) return std::make_unique<CudaBlockBounds>(bounds_, kv_head, q_scaled);
    if (!scaled_) {  // every KV head's queries at once: [n_heads][head_dim] = [n_kv_heads][group][head_dim]
      block_bounds_scale_query(layer_.q, layer_.group * layer_.kv.n_kv_heads * layer_.kv.head_dim, query_.scale, bounds_.q, layer_.stream);
      scaled_ = true;
    }
    return std::make_unique<CudaBlockBounds>(bounds_, kv_head, nullptr);
  }
  bool offers_bounds() const override { return with_bounds_; }
  bool attends_early() const override { return query_.attend_early; }
  bool bounds_early() const override { return with_bounds_ && query_.scale_on_device && query_.attend_early; }
  const float* host_query() override {
    if (!query_.host) return nullptr;
    if (!query_waited_) {
      const bool timed = policy_timing().on;
      if (timed) q_asked_ = seconds_now();
      {
        const Waiting waiting(PolicyTiming::Query);
        RL_CUDA_CHECK(cudaEventSynchronize(query_.copied));
      }
      if (timed) q_ready_ = seconds_now();
      query_waited_ = true;
    }
    return query_.host;
  }
  bool reads_host_cache() const override { return query_.host_reads; }

 private:
  CudaHeadAttention::Layer layer_;
  CudaBlockBounds::Layer bounds_;
  bool with_bounds_;
  Query query_;
  bool scaled_ = false, query_waited_ = false;
  bool launched_written_ = false;  // the latest launch() wrote every KV head's output
  bool wrote_early_ = false, early_stands_ = false;
  double setup_start_, between_, t0_, q_asked_ = 0, q_ready_ = 0;
  Together together_;
};

}  // namespace

std::unique_ptr<prhs::BlockAttention> make_block_attention(const HeadAttentionLayer& layer, const BlockBoundsLayer& bounds, bool with_bounds,
                                                         const BlockAttentionQuery& query, bool fold_together, bool write_together,
                                                         double setup_start, double between) {
  return std::make_unique<CudaBlockAttention>(layer, bounds, with_bounds, query, fold_together, write_together, setup_start, between);
}

}  // namespace rl::cuda
