// Sparse decode attention (PrHS and the baselines) on the CUDA engine against the CPU engine, the
// oracle, without Node.js (for the GPU machine). For each model spec (bench/gpu/forward-specs.ts)
// and each attention setting below, both engines prefill the same PREFILL ids into a sequence, fork
// it (the fork's tail block is a copy-on-write copy the GPU mirror must re-upload), set the sparse
// policy, and decode STEPS more ids one token at a time on the fork (the same ids for both: no
// sampling, so one step's rounding cannot change the next step's input). Halfway, a second request
// as the extension makes one (src/engine/process.ts): the parent freed, the fork truncated to
// PREFILL/2 + 5 positions, a new policy, fresh ids prefilled up to PREFILL positions again, into the
// freed blocks that earlier steps bounded (a device's kept sketches of them must not be used again),
// then the rest of the steps. Every step compares:
//   selection  the blocks of every (layer, KV head), their source and the certificate's expansions:
//              identical;
//   δ̂, δ       within 1e-3 (the selected mass comes from float32 GPU sums, the CPU's are double);
//   logits     max |Δ| / max |logit| <= 1e-4;
// and at the end the policy's counters (identical selections give identical counters). Where a
// selection differs and either engine took one of its decisions by less than kNearTie
// (HeadRecord::margin: the reuse gate, the ranking, the expansion's stop, worst head and picks), the
// two forward passes' float32 rounding can decide it either way: the runs part there, and only the
// steps before it are compared ("near_tie", "compared_steps"; session 7 met one, llama3
// prhs-defaults, bench/gpu/NOTES.md). Inside the
// peer engine, every KV head's attention over the chosen blocks is also redone by double host
// accumulators on the same q and KV (same_input_*: |Δlse| and |Δout| / max |out| <= 1e-4), which
// checks the kernel apart from the two forward passes' rounding; likewise every block bound the
// peer computes for the selection (BlockBounds: min/max and sketch bounds read back, the per-head
// sums and scores it returns) beside the host's on the same q and cache (bounds_*: |Δ| <= 1e-9;
// a setting that bounds blocks must have the peer bound them, unless REPO_LENS_CUDA_BOUNDS=0
// leaves them to the host). One JSON
// line per (model, setting), then one summary line "prhs_engine_check: PASS|FAIL ...". Exit status
// 0 pass, 1 fail, 2 error (no GPU, a missing spec).
//   prhs_engine_check [--prefill N] [--steps N] [--peer cuda|emulated] SPEC...
// --peer emulated (for machines without a GPU) runs the peer on the CPU backend with the block
// attention and the block bounds done by a host copy of the CUDA path's arithmetic (the sums over
// blocks in the kernels' order): it checks this program and the engine's plumbing (Model ->
// Backend::block_attention -> DecodeAttention -> BlockBounds), not the kernels.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "check_spec.h"
#include "cpu/cpu_backend.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "prhs/block_bounds.h"
#include "prhs/decode_attention.h"
#include "prhs/head_accumulator.h"
#include "prhs/key_sketch.h"
#include "prhs/kv_cache_blocks.h"
#include "prhs/log_math.h"
#include "prhs/selection.h"
#ifdef REPO_LENS_CUDA
#include "cuda/backend_cuda.h"
#endif

namespace {

constexpr double kLogitTolerance = 1e-4;  // relative to the step's largest |logit|
constexpr double kDeltaTolerance = 1e-3;  // absolute, on δ̂ and δ (shares in [0, 1])
// A selection decided by less than this (HeadRecord::margin, relative) may go either way between
// two forward passes whose q and keys differ by their float32 rounding (~1e-6 relative).
constexpr double kNearTie = 1e-5;
constexpr double kShadowTolerance = 1e-4;  // the peer's attention vs double accumulators on the same inputs: |Δlse|, |Δout| / max |out|
constexpr double kBoundsTolerance = 1e-9;  // the peer's block bounds, their sums and scores vs the host's on the same inputs (absolute)

struct Setting {
  const char* name;
  rl::prhs::Params params;
};

// The extension's defaults (src/trace/attention.ts) with mode prhs, then settings that reach the
// other paths: a budget tight enough that the certificate expands, layer sharing, the depth
// schedule, every key bound, strict certification with audits, and the baselines.
std::vector<Setting> settings() {
  using rl::prhs::KeyBound;
  using rl::prhs::Mode;
  std::vector<Setting> all;
  rl::prhs::Params p;
  p.mode = Mode::Prhs;
  all.push_back({"prhs-defaults", p});
  p.window = 16;
  p.budget = 0.2;
  p.delta_target = 0.02;
  p.strict = true;
  p.audit = true;
  all.push_back({"prhs-tight-strict-audit", p});
  p.layer_group = 2;
  p.depth_schedule = true;
  p.key_bound = KeyBound::Int4;
  p.strict = false;
  p.certify_every = 3;
  p.tau = 0.95;
  p.max_reuse = 4;
  all.push_back({"prhs-shared-depth-int4", p});
  rl::prhs::Params q;
  q.window = 16;
  q.budget = 0.2;
  q.mode = Mode::Quest;
  q.key_bound = KeyBound::MinMax;
  q.strict = true;
  all.push_back({"quest-minmax-strict", q});
  q.mode = Mode::Oracle;
  q.strict = false;
  all.push_back({"oracle", q});
  q.mode = Mode::Streaming;
  all.push_back({"streaming", q});
  q.mode = Mode::Dense;
  q.audit = true;
  all.push_back({"dense", q});
  return all;
}

// The CUDA path's attention over chosen blocks (block_attention_cuda.cu, chosen_attention.cu)
// redone on the host in float32: a running max, sum and weighted value sum per query head, folded
// when the selected mass or the output is asked for.
class EmulatedHeadAttention;

// The heads of a layer that were started (for EmulatedBlockAttention::write_early) and written.
struct EmulatedLayerHeads {
  std::vector<EmulatedHeadAttention*> started, written;
};

class EmulatedHeadAttention final : public rl::prhs::HeadAttention {
 public:
  EmulatedHeadAttention(const rl::KvCache& kv, int seq, int layer, int context, const float* q, float* out, int kv_head, int group,
                        EmulatedLayerHeads& heads)
      : kv_(kv), table_(kv.blocks(seq)), layer_(layer), context_(context), kv_head_(kv_head), group_(group), q_(q), out_(out),
        max_(group, -INFINITY), sum_(group, 0.f), acc_(size_t(group) * kv.shape().head_dim, 0.f), heads_(heads) {}
  ~EmulatedHeadAttention() override {
    for (auto* list : {&heads_.started, &heads_.written}) list->erase(std::remove(list->begin(), list->end(), this), list->end());
  }
  void add_block(int b) override {
    pending_.push_back(b);
    changed_ = early_;
  }
  void start() override { heads_.started.push_back(this); }
  int kv_head() const { return kv_head_; }
  void write_early() {
    write();
    early_ = true;
  }
  bool unchanged_since_early_write() const { return early_ && !changed_; }
  double lse(int g) override {
    fold();
    return sum_[g] > 0 ? double(max_[g]) + std::log(double(sum_[g])) : rl::prhs::kNegInf;
  }
  void write() override {
    fold();
    heads_.written.push_back(this);
    const int d = kv_.shape().head_dim;
    for (int g = 0; g < group_; g++)
      for (int i = 0; i < d; i++) out_[size_t(kv_head_ * group_ + g) * d + i] = sum_[g] > 0 ? acc_[size_t(g) * d + i] / sum_[g] : 0.f;
  }

 private:
  void fold() {
    const rl::KvCacheShape& s = kv_.shape();
    const int d = s.head_dim;
    const float scale = static_cast<float>(std::pow(static_cast<double>(d), -0.5));
    for (int b : pending_) {
      const float* k = kv_.keys(layer_, table_[b], kv_head_);
      const float* v = kv_.values(layer_, table_[b], kv_head_);
      const int fill = std::min(s.block_size, context_ - b * s.block_size);
      for (int g = 0; g < group_; g++) {
        const float* qg = q_ + size_t(kv_head_ * group_ + g) * d;
        float* acc = acc_.data() + size_t(g) * d;
        for (int j = 0; j < fill; j++) {
          float dot = 0.f;
          for (int i = 0; i < d; i++) dot += qg[i] * k[size_t(j) * d + i];
          const float score = dot * scale, m = std::max(max_[g], score);
          const float rescale = std::exp(max_[g] - m), p = std::exp(score - m);
          sum_[g] = sum_[g] * rescale + p;
          for (int i = 0; i < d; i++) acc[i] = acc[i] * rescale + p * v[size_t(j) * d + i];
          max_[g] = m;
        }
      }
    }
    pending_.clear();
  }

  const rl::KvCache& kv_;
  const std::vector<int>& table_;
  int layer_, context_, kv_head_, group_;
  const float* q_;
  float* out_;
  std::vector<int> pending_;
  std::vector<float> max_, sum_, acc_;  // [group], [group], [group][head_dim]
  EmulatedLayerHeads& heads_;
  bool early_ = false, changed_ = false;  // output written early; a block added since
};

// A block's bound as the host computes it (decode_attention.cc's host path, without its sketch cache).
double host_bound(const rl::prhs::LayerBlocks& kv, int kv_head, int b, const double* q, int bits) {
  const float* lo = kv.key_min(b, kv_head);
  const float* hi = kv.key_max(b, kv_head);
  if (bits == 0) return rl::prhs::minmax_log_bound(q, lo, hi, kv.fill(b), kv.head_dim());
  return rl::prhs::sketch_log_bound(q, rl::prhs::build_sketch(kv.keys(b, kv_head), lo, hi, kv.fill(b), kv.head_dim(), bits), lo, hi);
}

// The CUDA path's block bounds (block_bounds.cu) redone on the host: each bound as the host's (the
// kernels follow its order of operations), the sums over blocks in the kernels' order: 256 strided
// partial sums of exp(bound - largest), then a tree.
class EmulatedBlockBounds final : public rl::prhs::BlockBounds {
 public:
  EmulatedBlockBounds(const rl::KvCache& kv, int seq, int layer, int context, int kv_head, const double* q_scaled, int group)
      : blocks_(kv, seq, layer, context), kv_head_(kv_head), group_(group), n_(blocks_.n_blocks()),
        q_(q_scaled, q_scaled + size_t(group) * kv.shape().head_dim), tables_(2 * size_t(group) * n_) {}
  void bound(int table, const std::vector<char>& mask, int bits) override {
    const int d = blocks_.head_dim();
    for (int b = 0; b < n_; b++)
      if (mask[b])
        for (int g = 0; g < group_; g++) at(table)[size_t(g) * n_ + b] = host_bound(blocks_, kv_head_, b, q_.data() + size_t(g) * d, bits);
  }
  void lse(int table, const std::vector<char>& mask, double* lse) override {
    for (int g = 0; g < group_; g++) lse[g] = tree_lse(at(table) + size_t(g) * n_, mask);
  }
  void scores(int table, const std::vector<char>& mask, double* score) override {
    std::vector<double> lse_g(group_);
    lse(table, mask, lse_g.data());
    for (int b = 0; b < n_; b++) {
      double s = 0;
      if (mask[b])
        for (int g = 0; g < group_; g++)
          if (lse_g[g] != rl::prhs::kNegInf) s += std::exp(at(table)[size_t(g) * n_ + b] - lse_g[g]);
      score[b] = s;
    }
  }
  void read(int table, double* log_mass) override { std::copy(at(table), at(table) + size_t(group_) * n_, log_mass); }
  bool masses(const std::vector<int>& blocks, double* out) override {
    const int d = blocks_.head_dim();
    for (size_t i = 0; i < blocks.size(); i++)
      for (int g = 0; g < group_; g++)
        out[i * group_ + g] = rl::prhs::exact_log_mass(q_.data() + size_t(g) * d, blocks_.keys(blocks[i], kv_head_), blocks_.fill(blocks[i]), d);
    return true;
  }

 private:
  double* at(int table) { return tables_.data() + size_t(table) * group_ * n_; }
  double tree_lse(const double* row, const std::vector<char>& mask) const {
    constexpr int kThreads = 256;
    double part[kThreads];
    for (int t = 0; t < kThreads; t++) {
      part[t] = -INFINITY;
      for (int b = t; b < n_; b += kThreads) if (mask[b]) part[t] = std::fmax(part[t], row[b]);
    }
    double top = -INFINITY;
    for (int t = 0; t < kThreads; t++) top = std::fmax(top, part[t]);
    if (top == -INFINITY) return rl::prhs::kNegInf;
    for (int t = 0; t < kThreads; t++) {
      part[t] = 0;
      for (int b = t; b < n_; b += kThreads) if (mask[b]) part[t] += std::exp(row[b] - top);
    }
    for (int half = kThreads / 2; half > 0; half >>= 1)
      for (int t = 0; t < half; t++) part[t] += part[t + half];
    return top + std::log(part[0]);
  }

  rl::prhs::KvCacheBlocks blocks_;
  int kv_head_, group_, n_;
  std::vector<double> q_;       // [group][head_dim]
  std::vector<double> tables_;  // [2][group][n_blocks]
};

class EmulatedBlockAttention final : public rl::prhs::BlockAttention {
 public:
  EmulatedBlockAttention(const rl::KvCache& kv, int seq, int layer, int context, const float* q, float* out, int group)
      : kv_(kv), seq_(seq), layer_(layer), context_(context), q_(q), out_(out), group_(group) {}
  std::unique_ptr<rl::prhs::HeadAttention> head(int kv_head, const double*) override {
    return std::make_unique<EmulatedHeadAttention>(kv_, seq_, layer_, context_, q_, out_, kv_head, group_, heads_);
  }
  // As the CUDA backend's: every KV head started, their outputs written now.
  bool write_early() override {
    const int n = kv_.shape().n_kv_heads;
    std::vector<EmulatedHeadAttention*> started;
    started.swap(heads_.started);
    if (int(started.size()) != n || distinct_heads(started) != n) return false;
    for (EmulatedHeadAttention* h : started) h->write_early();
    heads_.written.clear();
    wrote_early_ = true;
    return true;
  }
  void finish() override {
    bool unchanged = true;
    for (const EmulatedHeadAttention* h : heads_.written) unchanged = unchanged && h->unchanged_since_early_write();
    const int n = kv_.shape().n_kv_heads;
    early_stands_ = wrote_early_ && int(heads_.written.size()) == n && distinct_heads(heads_.written) == n && unchanged;
    heads_.written.clear();
  }
  bool early_write_stands() const override { return early_stands_; }
  std::unique_ptr<rl::prhs::BlockBounds> bounds(int kv_head, const double* q_scaled) override {
    std::vector<double> own;
    if (!q_scaled) {  // asked before the host's selection has q (DecodeAttention::prepare): its arithmetic
      const int d = kv_.shape().head_dim;
      const double scale = 1.0 / std::sqrt(static_cast<double>(d));
      own.resize(size_t(group_) * d);
      for (size_t i = 0; i < own.size(); i++) own[i] = q_[size_t(kv_head) * group_ * d + i] * scale;
      q_scaled = own.data();
    }
    return std::make_unique<EmulatedBlockBounds>(kv_, seq_, layer_, context_, kv_head, q_scaled, group_);
  }
  bool offers_bounds() const override { return true; }
  bool bounds_early() const override { return true; }
  bool attends_early() const override { return true; }  // q is host memory here, read when a block is folded

 private:
  static int distinct_heads(const std::vector<EmulatedHeadAttention*>& heads) {
    std::vector<int> ids;
    for (const EmulatedHeadAttention* h : heads) ids.push_back(h->kv_head());
    std::sort(ids.begin(), ids.end());
    return int(std::unique(ids.begin(), ids.end()) - ids.begin());
  }

  const rl::KvCache& kv_;
  int seq_, layer_, context_;
  const float* q_;
  float* out_;
  int group_;
  EmulatedLayerHeads heads_;
  bool wrote_early_ = false, early_stands_ = false;
};

// The peer's own attention over the chosen blocks beside host accumulators in double (the CPU
// oracle's HeadAccumulator) on the same q, keys and values: the kernel checked on identical inputs
// inside the engine, apart from any rounding difference between the two forward passes.
struct ShadowStats {
  double lse_max_abs = 0;  // |Δ log-sum-exp| of a query head's scores over the chosen blocks
  double out_max_rel = 0;  // max |Δ out| / max |out| over a KV head's group
  long heads = 0;
  double bound_max_abs = 0;  // |Δ bound| of a (block, query head), min/max or sketch
  double sum_max_abs = 0;    // |Δ| of a query head's log-sum-exp of bounds over a mask, or of a block's score
  long bound_calls = 0;      // BlockBounds calls checked
  long mass_calls = 0;       // of which BlockBounds::masses (the certificate's expansion in batches)
};

double gap(double a, double b) {
  if (a == b) return 0;  // equal infinities too
  const double d = std::fabs(a - b);
  return std::isnan(d) ? INFINITY : d;
}

// The peer's block bounds beside the host's on the same q and cache: every bound it computes (read
// back), every sum and score it returns.
class ShadowBlockBounds final : public rl::prhs::BlockBounds {
 public:
  ShadowBlockBounds(std::unique_ptr<rl::prhs::BlockBounds> peer, const rl::KvCache& kv, int seq, int layer, int context, int kv_head,
                    const double* q_scaled, int group, ShadowStats& stats)
      : peer_(std::move(peer)), blocks_(kv, seq, layer, context), kv_head_(kv_head), group_(group), n_(blocks_.n_blocks()),
        q_(q_scaled), stats_(stats), host_(2 * size_t(group) * n_, rl::prhs::kNegInf), seen_(2 * size_t(group) * n_) {}
  void bound(int table, const std::vector<char>& mask, int bits) override {
    peer_->bound(table, mask, bits);
    const int d = blocks_.head_dim();
    double* host = host_.data() + size_t(table) * group_ * n_;
    for (int b = 0; b < n_; b++)
      if (mask[b])
        for (int g = 0; g < group_; g++) host[size_t(g) * n_ + b] = host_bound(blocks_, kv_head_, b, q_ + size_t(g) * d, bits);
    peer_->read(table, seen_.data());
    for (int b = 0; b < n_; b++)
      if (mask[b])
        for (int g = 0; g < group_; g++) stats_.bound_max_abs = std::max(stats_.bound_max_abs, gap(seen_[size_t(g) * n_ + b], host[size_t(g) * n_ + b]));
    stats_.bound_calls++;
  }
  void lse(int table, const std::vector<char>& mask, double* lse) override {
    peer_->lse(table, mask, lse);
    for (int g = 0; g < group_; g++) {
      double host = rl::prhs::kNegInf;
      for (int b = 0; b < n_; b++) if (mask[b]) host = rl::prhs::log_add(host, host_[(size_t(table) * group_ + g) * n_ + b]);
      stats_.sum_max_abs = std::max(stats_.sum_max_abs, gap(lse[g], host));
    }
    stats_.bound_calls++;
  }
  void scores(int table, const std::vector<char>& mask, double* score) override {
    peer_->scores(table, mask, score);
    const std::vector<double> table_host(host_.begin() + size_t(table) * group_ * n_, host_.begin() + size_t(table + 1) * group_ * n_);
    const std::vector<double> host = rl::prhs::block_scores(table_host, group_, n_, mask);
    for (int b = 0; b < n_; b++) stats_.sum_max_abs = std::max(stats_.sum_max_abs, gap(score[b], host[b]));
    stats_.bound_calls++;
  }
  void read(int table, double* log_mass) override { peer_->read(table, log_mass); }
  bool masses(const std::vector<int>& blocks, double* out) override {
    if (!peer_->masses(blocks, out)) return false;
    const int d = blocks_.head_dim();
    for (size_t i = 0; i < blocks.size(); i++)
      for (int g = 0; g < group_; g++) {
        const double host = rl::prhs::exact_log_mass(q_ + size_t(g) * d, blocks_.keys(blocks[i], kv_head_), blocks_.fill(blocks[i]), d);
        stats_.sum_max_abs = std::max(stats_.sum_max_abs, gap(out[i * group_ + g], host));
      }
    stats_.bound_calls++;
    stats_.mass_calls++;
    return true;
  }
  void prefetch_lse(int table, const std::vector<char>& mask) override { peer_->prefetch_lse(table, mask); }
  void prefetch_scores(int table, const std::vector<char>& mask) override { peer_->prefetch_scores(table, mask); }

 private:
  std::unique_ptr<rl::prhs::BlockBounds> peer_;
  rl::prhs::KvCacheBlocks blocks_;
  int kv_head_, group_, n_;
  const double* q_;
  ShadowStats& stats_;
  std::vector<double> host_;  // [2][group][n_blocks] the host's bounds of the blocks bounded so far
  std::vector<double> seen_;  // [group][n_blocks] the peer's table read back
};

class ShadowHeadAttention final : public rl::prhs::HeadAttention {
 public:
  // written: where write() lists this head, compared once the peer's layer finished (its writes may
  // be launched then: BlockAttention::finish).
  ShadowHeadAttention(std::unique_ptr<rl::prhs::HeadAttention> peer, rl::Backend& backend, const rl::KvCache& kv, int seq, int layer,
                      int context, const double* q_scaled, float* out, int kv_head, int group, ShadowStats& stats,
                      std::vector<ShadowHeadAttention*>& written)
      : peer_(std::move(peer)), backend_(backend), blocks_(kv, seq, layer, context), q_(q_scaled), out_(out), kv_head_(kv_head),
        group_(group), stats_(stats), acc_(group, rl::prhs::HeadAccumulator(kv.shape().head_dim)), written_(written) {}
  ~ShadowHeadAttention() override { written_.erase(std::remove(written_.begin(), written_.end(), this), written_.end()); }
  void add_block(int b) override {
    peer_->add_block(b);
    const int d = blocks_.head_dim();
    for (int g = 0; g < group_; g++) acc_[g].add_block(q_ + size_t(g) * d, blocks_.keys(b, kv_head_), blocks_.values(b, kv_head_), blocks_.fill(b));
  }
  void prefetch_lse() override { peer_->prefetch_lse(); }
  double lse(int g) override {
    const double peer = peer_->lse(g), host = acc_[g].lse();
    const double gap = peer == host ? 0 : std::fabs(peer - host);
    stats_.lse_max_abs = std::max(stats_.lse_max_abs, std::isnan(gap) ? INFINITY : gap);
    return peer;
  }
  void start() override { peer_->start(); }
  void write() override {
    peer_->write();
    written_.push_back(this);
  }
  // The peer's output beside the host accumulators' (after the peer's layer finished).
  void compare() {
    const size_t d = blocks_.head_dim(), n = size_t(group_) * d;
    std::vector<float> peer(n), host(n);
    backend_.copy_to_host(out_ + size_t(kv_head_) * n, n, peer.data());
    double peak = 0, diff = 0;
    for (int g = 0; g < group_; g++) acc_[g].write(host.data() + g * d);
    for (size_t i = 0; i < n; i++) {
      peak = std::max(peak, std::fabs(double(host[i])));
      const double gap = std::fabs(double(peer[i]) - double(host[i]));
      diff = std::isnan(gap) ? INFINITY : std::max(diff, gap);
    }
    stats_.out_max_rel = std::max(stats_.out_max_rel, diff / std::max(peak, 1e-30));
    stats_.heads++;
  }

 private:
  std::unique_ptr<rl::prhs::HeadAttention> peer_;
  rl::Backend& backend_;
  rl::prhs::KvCacheBlocks blocks_;
  const double* q_;
  float* out_;  // [n_heads][head_dim], the peer's memory
  int kv_head_, group_;
  ShadowStats& stats_;
  std::vector<rl::prhs::HeadAccumulator> acc_;
  std::vector<ShadowHeadAttention*>& written_;
};

class ShadowBlockAttention final : public rl::prhs::BlockAttention {
 public:
  ShadowBlockAttention(std::unique_ptr<rl::prhs::BlockAttention> peer, rl::Backend& backend, const rl::KvCache& kv, int seq, int layer,
                       int context, float* out, int group, ShadowStats& stats)
      : peer_(std::move(peer)), backend_(backend), kv_(kv), seq_(seq), layer_(layer), context_(context), out_(out), group_(group), stats_(stats) {}
  std::unique_ptr<rl::prhs::HeadAttention> head(int kv_head, const double* q_scaled) override {
    return std::make_unique<ShadowHeadAttention>(peer_->head(kv_head, q_scaled), backend_, kv_, seq_, layer_, context_, q_scaled, out_, kv_head,
                                                 group_, stats_, written_);
  }
  void launch() override { peer_->launch(); }
  void finish() override {
    peer_->finish();
    std::vector<ShadowHeadAttention*> heads;
    heads.swap(written_);
    for (ShadowHeadAttention* h : heads) h->compare();
  }
  std::unique_ptr<rl::prhs::BlockBounds> bounds(int kv_head, const double* q_scaled) override {
    std::unique_ptr<rl::prhs::BlockBounds> peer = peer_->bounds(kv_head, q_scaled);
    if (!peer) return nullptr;
    return std::make_unique<ShadowBlockBounds>(std::move(peer), kv_, seq_, layer_, context_, kv_head, q_scaled, group_, stats_);
  }
  bool offers_bounds() const override { return peer_->offers_bounds(); }
  const float* host_query() override { return peer_->host_query(); }
  // reads_host_cache(): true (the default), the shadows read the step's keys from the host cache.

 private:
  std::unique_ptr<rl::prhs::BlockAttention> peer_;
  rl::Backend& backend_;
  const rl::KvCache& kv_;
  int seq_, layer_, context_;
  float* out_;
  int group_;
  ShadowStats& stats_;
  std::vector<ShadowHeadAttention*> written_;  // heads written, compared at finish()
};

// The peer engine's backend: every op forwarded to `inner` (CUDA, or the CPU for the emulation);
// block_attention is the inner backend's own (cuda) or the host emulation above, always shadowed.
class PeerBackend final : public rl::Backend {
 public:
  PeerBackend(std::unique_ptr<rl::Backend> inner, bool emulate, bool shadowed, ShadowStats& stats)
      : inner_(std::move(inner)), emulate_(emulate), shadowed_(shadowed), stats_(stats) {}
  const char* name() const override { return inner_->name(); }
  float* alloc(size_t count) override { return inner_->alloc(count); }
  void copy_to_host(const float* src, size_t count, float* dst) override { inner_->copy_to_host(src, count, dst); }
  void embed(const rl::Weight& t, const int32_t* tokens, int n, float* out) override { inner_->embed(t, tokens, n, out); }
  void rmsnorm(const float* x, const rl::Weight& w, int n, float eps, float* out) override { inner_->rmsnorm(x, w, n, eps, out); }
  void matmul(const float* x, int n, const rl::Weight& w, const rl::Weight* bias, float* y) override { inner_->matmul(x, n, w, bias, y); }
  void rope(float* x, int n, int heads, int hd, int pos0, const float* inv_freq) override { inner_->rope(x, n, heads, hd, pos0, inv_freq); }
  void swiglu(const float* gate, const float* up, size_t count, float* out) override { inner_->swiglu(gate, up, count, out); }
  void add(float* x, const float* y, size_t count) override { inner_->add(x, y, count); }
  int prefill_chunk() const override { return inner_->prefill_chunk(); }
  // The fused ops: the inner backend's own (the CUDA engine's decode path), not backend.h's defaults.
  void norm_qkv(const float* x, const rl::Weight& norm, float eps, int n, const rl::Weight& wq, const rl::Weight* bq, const rl::Weight& wk,
                const rl::Weight* bk, const rl::Weight& wv, const rl::Weight* bv, float* xb, float* q, float* k, float* v) override {
    inner_->norm_qkv(x, norm, eps, n, wq, bq, wk, bk, wv, bv, xb, q, k, v);
  }
  void rope_kv_write(rl::KvCache& kv, int seq, int layer, int pos0, int n, float* q, int n_heads, float* k, const float* v, int n_kv_heads,
                     int head_dim, const float* inv_freq) override {
    inner_->rope_kv_write(kv, seq, layer, pos0, n, q, n_heads, k, v, n_kv_heads, head_dim, inv_freq);
  }
  void matmul_add(const float* x, int n, const rl::Weight& w, float* y, float* scratch) override { inner_->matmul_add(x, n, w, y, scratch); }
  void matmul_add_to(const float* x, int n, const rl::Weight& w, const float* residual, float* y, float* scratch) override {
    inner_->matmul_add_to(x, n, w, residual, y, scratch);
  }
  void norm_swiglu(const float* x, const rl::Weight& norm, float eps, int n, const rl::Weight& gate, const rl::Weight& up, float* xb,
                   float* up_scratch, float* out) override {
    inner_->norm_swiglu(x, norm, eps, n, gate, up, xb, up_scratch, out);
  }
  void kv_write(rl::KvCache& kv, int seq, int layer, int pos0, int n, const float* k, const float* v) override {
    inner_->kv_write(kv, seq, layer, pos0, n, k, v);
  }
  void kv_flush(rl::KvCache& kv) override { inner_->kv_flush(kv); }
  void kv_written(rl::KvCache& kv) override { inner_->kv_written(kv); }
  void attention(const rl::KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out) override {
    inner_->attention(kv, seq, layer, pos0, n, n_heads, q, out);
  }
  std::unique_ptr<rl::prhs::BlockAttention> block_attention(const rl::KvCache& kv, int seq, int layer, int context, int n_heads,
                                                            const float* q, float* out) override {
    const int group = n_heads / kv.shape().n_kv_heads;
    std::unique_ptr<rl::prhs::BlockAttention> peer =
        emulate_ ? std::make_unique<EmulatedBlockAttention>(kv, seq, layer, context, q, out, group)
                 : inner_->block_attention(kv, seq, layer, context, n_heads, q, out);
    if (!peer) throw std::runtime_error(std::string("backend ") + inner_->name() + " has no block_attention: its decode would not be checked");
    if (!shadowed_) return peer;  // the engine's own path: no host reads of the step's keys but the policy's
    return std::make_unique<ShadowBlockAttention>(std::move(peer), *this, kv, seq, layer, context, out, group, stats_);
  }

 private:
  std::unique_ptr<rl::Backend> inner_;
  bool emulate_, shadowed_;
  ShadowStats& stats_;
};

// PRHS_CHECK_SHADOW=0: the peer's block attention is not shadowed (the same-input and bounds checks
// are skipped), so the engine takes its own path: a CUDA backend then lets the decode step skip the
// write-through to the host where the policy reads no key (the shadows read the step's keys).
bool shadowed() {
  const char* v = std::getenv("PRHS_CHECK_SHADOW");
  return !(v && std::string(v) == "0");
}

std::unique_ptr<rl::Backend> make_peer(const std::string& peer, ShadowStats& stats) {
  if (peer == "emulated") return std::make_unique<PeerBackend>(std::make_unique<rl::CpuBackend>(2), true, shadowed(), stats);
#ifdef REPO_LENS_CUDA
  if (peer == "cuda") return std::make_unique<PeerBackend>(rl::cuda::make_cuda_backend(), false, shadowed(), stats);
#endif
  throw std::runtime_error("peer backend \"" + peer + "\" is not in this build (cuda needs REPO_LENS_CUDA=1)");
}

// n token ids below vocab from a linear congruential generator started at `seed` (the same on every machine).
std::vector<int32_t> random_ids(size_t n, uint32_t seed, int vocab) {
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>((seed = seed * 1664525u + 1013904223u) >> 8) % vocab;
  return ids;
}

// One engine's decode: the records and logits of every step, and the counters at the end.
struct Run {
  std::vector<std::vector<rl::prhs::HeadRecord>> records;  // [step][layer * kv_heads + head]
  std::vector<std::vector<float>> logits;                   // [step][vocab]
  std::vector<int> contexts;                                // [step] positions attended
  rl::prhs::Counters counters;                              // the second request's policy
  rl::EarlyStats early;                                     // layers written early (Model::settle_early)
};

Run decode(const rl::ModelSpec& spec, std::unique_ptr<rl::Backend> backend, const rl::prhs::Params& params,
           const std::vector<int32_t>& ids, int prefill) {
  const rl::ModelArch& a = spec.arch;
  rl::Model model(spec, std::move(backend));
  const int parent = model.new_sequence();
  model.forward(parent, ids.data(), prefill, rl::LogitsWanted::None, nullptr);
  const int seq = model.fork_sequence(parent);
  auto policy = [&] { return std::make_unique<rl::prhs::DecodeAttention>(params, a.num_layers, a.num_heads, a.num_kv_heads, a.head_dim); };
  model.set_decode_attention(policy());
  Run run;
  const size_t second = prefill + (ids.size() - prefill) / 2;
  for (size_t t = prefill; t < ids.size(); t++) {
    if (t == second) {
      model.set_decode_attention(nullptr);
      // The parent let go, so the blocks the truncation drops are free and the refill takes them
      // back: blocks the first request bounded while full now hold other keys. Back to the first
      // request's length: positions prefill/2 + 5 .. prefill - 1 written again.
      model.free_sequence(parent);
      const int keep = std::min(prefill, prefill / 2 + 5), fresh = prefill - keep;
      model.truncate_sequence(seq, keep);
      const std::vector<int32_t> refill = random_ids(fresh, 777, a.vocab_size);
      if (fresh > 0) model.forward(seq, refill.data(), fresh, rl::LogitsWanted::None, nullptr);
      model.set_decode_attention(policy());
    }
    run.logits.emplace_back(a.vocab_size);
    model.forward(seq, &ids[t], 1, rl::LogitsWanted::Last, run.logits.back().data());
    run.records.push_back(model.decode_attention()->records());
    run.contexts.push_back(model.sequence_length(seq));
  }
  run.counters = model.decode_attention()->counters();
  run.early = model.early_stats();
  return run;
}

std::string blocks_text(const std::vector<int>& blocks) {
  std::string s = "[";
  for (size_t i = 0; i < blocks.size(); i++) s += (i ? "," : "") + std::to_string(blocks[i]);
  return s + "]";
}

double delta_gap(double a, double b) {
  if ((a < 0) != (b < 0)) return INFINITY;  // one certified (or audited), the other not
  return std::fabs(a - b);
}

bool same_counters(const rl::prhs::Counters& a, const rl::prhs::Counters& b) {
  return a.steps == b.steps && a.selections == b.selections && a.scoring_passes == b.scoring_passes &&
         a.certify_passes == b.certify_passes && a.certified == b.certified && a.expanded == b.expanded &&
         a.entries_read == b.entries_read && a.entries_context == b.entries_context && a.summary_bytes == b.summary_bytes;
}

// Returns whether the peer matched the CPU; prints one JSON line.
bool check(const std::string& spec_path, const Setting& setting, const std::string& peer, int prefill, int steps) {
  const CheckSpec c = read_check_spec(spec_path);
  rl::ModelSpec spec = c.spec;
  const rl::ModelArch& a = spec.arch;
  if (prefill + steps > spec.context_tokens) throw std::runtime_error(spec_path + ": prefill + steps exceed the context of " + std::to_string(spec.context_tokens));
  const std::vector<int32_t> ids = random_ids(prefill + steps, 20261123, a.vocab_size);

  const Run cpu = decode(spec, std::make_unique<rl::CpuBackend>(2), setting.params, ids, prefill);
  ShadowStats shadow;
  const Run other = decode(spec, make_peer(peer, shadow), setting.params, ids, prefill);

  const auto same_selection = [](const rl::prhs::HeadRecord& x, const rl::prhs::HeadRecord& y) {
    return x.blocks == y.blocks && x.source == y.source && x.expanded == y.expanded && x.entries_read == y.entries_read;
  };
  // The first selection that differs, if either engine took it by less than kNearTie: the runs
  // part there (every later step's input differs), so only the steps before it are compared.
  int compared_steps = steps;
  std::string near_tie;
  for (int t = 0; t < steps && compared_steps == steps; t++) {
    for (size_t s = 0; s < cpu.records[t].size(); s++) {
      const rl::prhs::HeadRecord& x = cpu.records[t][s];
      const rl::prhs::HeadRecord& y = other.records[t][s];
      if (same_selection(x, y)) continue;
      const double margin = std::min(x.margin, y.margin);
      if (margin <= kNearTie) {
        compared_steps = t;
        char text[96];
        std::snprintf(text, sizeof text, "step %d layer %d kv_head %d margin %.3g", t, int(s) / a.num_kv_heads, int(s) % a.num_kv_heads, margin);
        near_tie = text;
      }
      break;
    }
  }
  int selection_mismatches = 0, compared = 0, expansions = 0, close_calls = 0;
  double worst_logit = 0, worst_delta_hat = 0, worst_delta = 0, least_margin = INFINITY;
  long blocks_read = 0, blocks_context = 0;
  std::string first_mismatch;
  for (int t = 0; t < compared_steps; t++) {
    double peak = 0, diff = 0;
    for (int i = 0; i < a.vocab_size; i++) {
      peak = std::max(peak, std::fabs(double(cpu.logits[t][i])));
      const double d = std::fabs(double(cpu.logits[t][i]) - double(other.logits[t][i]));
      diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    }
    worst_logit = std::max(worst_logit, diff / std::max(peak, 1e-30));
    const int context = cpu.contexts[t];
    for (size_t s = 0; s < cpu.records[t].size(); s++) {
      const rl::prhs::HeadRecord& x = cpu.records[t][s];
      const rl::prhs::HeadRecord& y = other.records[t][s];
      compared++;
      expansions += x.expanded;
      least_margin = std::min(least_margin, x.margin);
      close_calls += x.margin <= kNearTie;
      blocks_read += long(x.blocks.size());
      blocks_context += (context + spec.kv_block_size - 1) / spec.kv_block_size;
      worst_delta_hat = std::max(worst_delta_hat, delta_gap(x.delta_hat, y.delta_hat));
      worst_delta = std::max(worst_delta, delta_gap(x.delta, y.delta));
      if (!same_selection(x, y)) {
        if (selection_mismatches++ == 0) {
          const int layer = int(s) / a.num_kv_heads, head = int(s) % a.num_kv_heads;
          first_mismatch = "step " + std::to_string(t) + " layer " + std::to_string(layer) + " kv_head " + std::to_string(head) + ": cpu " +
                           rl::prhs::source_name(x.source) + " " + blocks_text(x.blocks) + " +" + std::to_string(x.expanded) + ", " + peer +
                           " " + rl::prhs::source_name(y.source) + " " + blocks_text(y.blocks) + " +" + std::to_string(y.expanded);
        }
      }
    }
  }
  const bool counters_match = same_counters(cpu.counters, other.counters);
  // Where the setting bounds blocks, the peer must bound them itself (its BlockBounds, shadowed),
  // unless REPO_LENS_CUDA_BOUNDS=0 tells the CUDA backend to leave them to the host.
  const char* bounds_env = std::getenv("REPO_LENS_CUDA_BOUNDS");
  const bool bounds_off = peer == "cuda" && bounds_env && std::string(bounds_env) == "0";
  const bool bounds_expected = !bounds_off && (setting.params.strict || setting.params.mode == rl::prhs::Mode::Prhs ||
                                               setting.params.mode == rl::prhs::Mode::Quest);
  const bool shadow_ok = !shadowed() || (shadow.heads > 0 && shadow.lse_max_abs <= kShadowTolerance && shadow.out_max_rel <= kShadowTolerance &&
                                          (shadow.bound_calls > 0 || !bounds_expected) && shadow.bound_max_abs <= kBoundsTolerance &&
                                          shadow.sum_max_abs <= kBoundsTolerance);
  // (Runs that part at a near tie count differently from there on.)
  const bool ok = selection_mismatches == 0 && (counters_match || compared_steps < steps) && worst_logit <= kLogitTolerance && worst_delta_hat <= kDeltaTolerance &&
                  worst_delta <= kDeltaTolerance && shadow_ok;
  std::printf("{\"spec\": \"%s\", \"setting\": \"%s\", \"peer\": \"%s\", \"prefill\": %d, \"steps\": %d, \"selections\": %d, "
              "\"compared_steps\": %d, \"least_margin\": %.3g, \"near_tie_share\": %.3g, \"near_tie\": \"%s\", "
              "\"selection_mismatches\": %d, \"first_mismatch\": \"%s\", \"counters_identical\": %s, \"expansions\": %d, "
              "\"blocks_read_share\": %.3f, \"logits_max_rel\": %.3g, \"delta_hat_max_abs\": %.3g, \"delta_max_abs\": %.3g, "
              "\"same_input_heads\": %ld, \"same_input_lse_max_abs\": %.3g, \"same_input_out_max_rel\": %.3g, "
              "\"bounds_calls\": %ld, \"mass_calls\": %ld, \"bounds_max_abs\": %.3g, \"bounds_sums_max_abs\": %.3g, \"early_layers\": %ld, \"early_redone\": %ld, \"shadowed\": %s, \"pass\": %s}\n",
              spec_path.c_str(), setting.name, peer.c_str(), prefill, steps, compared, compared_steps, least_margin,
              double(close_calls) / std::max(1, compared), near_tie.c_str(), selection_mismatches,
              first_mismatch.c_str(),
              counters_match ? "true" : "false", expansions, double(blocks_read) / std::max(1L, blocks_context), worst_logit,
              worst_delta_hat, worst_delta, shadow.heads, shadow.lse_max_abs, shadow.out_max_rel, shadow.bound_calls, shadow.mass_calls, shadow.bound_max_abs,
              shadow.sum_max_abs, other.early.layers, other.early.redone, shadowed() ? "true" : "false", ok ? "true" : "false");
  std::fflush(stdout);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  int prefill = 400, steps = 40;
  std::string peer = "cuda";
  std::vector<std::string> specs;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if ((arg == "--prefill" || arg == "--steps" || arg == "--peer") && i + 1 < argc) {
      const std::string value = argv[++i];
      if (arg == "--peer") peer = value;
      else (arg == "--prefill" ? prefill : steps) = std::stoi(value);
    } else {
      specs.push_back(arg);
    }
  }
  if (specs.empty() || prefill < 1 || steps < 1) {
    std::fprintf(stderr, "usage: prhs_engine_check [--prefill N] [--steps N] [--peer cuda|emulated] SPEC...\n");
    return 2;
  }
  int passed = 0, total = 0;
  std::string failed;  // "spec:setting ..." of the checks that did not pass
  try {
    for (const std::string& spec : specs) {
      for (const Setting& setting : settings()) {
        total++;
        if (check(spec, setting, peer, prefill, steps)) passed++;
        else failed += " " + spec.substr(spec.find_last_of('/') + 1) + ":" + setting.name;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prhs_engine_check: error: %s\n", e.what());
    std::printf("prhs_engine_check: FAIL (error after %d of %d checks passed: %s)\n", passed, total, e.what());
    return 2;
  }
  std::printf("prhs_engine_check: %s: %d of %d (model, setting) checks identical selections, logits within %g relative, peer %s%s%s\n",
              passed == total ? "PASS" : "FAIL", passed, total, kLogitTolerance, peer.c_str(), failed.empty() ? "" : "; failed:", failed.c_str());
  return passed == total ? 0 : 1;
}
