#include "prhs/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include "prhs/block_bounds.h"
#include "prhs/expansion_order.h"
#include "prhs/head_accumulator.h"
#include "prhs/log_math.h"
#include "prhs/selection.h"

namespace rl::prhs {
namespace {

// The blocks b with mask[b], ascending.
std::vector<int> blocks_in(const std::vector<char>& mask) {
  const int n = static_cast<int>(mask.size());
  // Written branch-free into a scratch buffer first (the chosen blocks are scattered), so the result
  // is allocated at its size, not zero-filled at the mask's (a decode step makes several per KV head).
  thread_local std::vector<int> scratch;
  if (scratch.size() < mask.size()) scratch.resize(mask.size());
  const char* m = mask.data();
  int* o = scratch.data();
  int k = 0, b = 0;
  for (; b + 8 <= n; b += 8) {  // eight mask bytes at a time: most are all zero at a small budget
    uint64_t word;
    std::memcpy(&word, m + b, sizeof word);
    if (word == 0) continue;
    for (int i = b; i < b + 8; i++) {
      o[k] = i;
      k += m[i] != 0;
    }
  }
  for (; b < n; b++) {
    o[k] = b;
    k += m[b] != 0;
  }
  return std::vector<int>(o, o + k);
}

// The certificate's decision to go on with worst head `top` (its δ̂ the first largest, above the
// target): the relative gaps to the target and to the runner-up head.
double worst_head_margin(const std::vector<double>& delta_hat, int top, double target) {
  double margin = relative_gap(delta_hat[top], target);
  for (size_t g = 0; g < delta_hat.size(); g++) {
    if (static_cast<int>(g) != top) margin = std::min(margin, relative_gap(delta_hat[top], delta_hat[g]));
  }
  return margin;
}

// The certificate's expansion in batches (BlockBounds::masses): the first batch asks for the masses
// of each query head's this many best-bounded unselected blocks; a second one, where those do not
// suffice, for every unselected block left (one launch and one wait more, where doubling batches took
// up to nine at 128K, each with its passes over the blocks on the host).
constexpr int kFirstExpansionBatch = 8;

// The blocks whose masses the next expansion batch asks for: per query head g, the `per_head`
// unselected blocks without a mass with the largest bounds ub[g][b] (ties: the lower block first,
// as the expansion picks), all heads' together, ascending. The expansion adds, for its worst head,
// the unselected block with the largest bound: while it adds fewer than `per_head` blocks, each is
// in this set or already has its mass.
std::vector<int> expansion_batch(const std::vector<double>& ub, int groups, int n_blocks, const std::vector<char>& sel,
                                 const std::vector<char>& have, int per_head) {
  std::vector<int> open;
  for (int b = 0; b < n_blocks; b++) if (!sel[b] && !have[b]) open.push_back(b);
  if (open.size() <= static_cast<size_t>(per_head)) return open;
  const size_t take = static_cast<size_t>(per_head);
  std::vector<char> want(n_blocks, 0);
  for (int g = 0; g < groups; g++) {
    const double* row = ub.data() + static_cast<size_t>(g) * n_blocks;
    std::nth_element(open.begin(), open.begin() + (take - 1), open.end(),
                     [row](int a, int b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    for (size_t i = 0; i < take; i++) want[open[i]] = 1;
  }
  return blocks_in(want);
}

// The certificate's U (log Σ of the unselected blocks' bounds per query head) during an expansion in
// batches, kept as running sums: S_g = Σ exp(ub - m_g) over the blocks unselected when it starts, less
// each block added, with a rigorous bound on how far M_g + log S_g and the host's chain of log_add
// (recompute below) can each be from the true value. decide() takes a decision of the expansion loop
// only where those bounds settle it: the loop's decisions stay exactly those of the chain.
class RunningOut {
 public:
  // False where the bounds are not all finite (the loop then recomputes the chain after every block).
  bool start(const std::vector<double>& ub, int groups, int n_blocks, const std::vector<char>& sel) {
    g_ = groups, nb_ = n_blocks, n_ = 0, removed_ = 0;
    m_.assign(g_, kNegInf);
    double largest_abs = 0;
    for (int b = 0; b < nb_; b++) {
      if (sel[b]) continue;
      n_++;
      for (int g = 0; g < g_; g++) {
        const double v = ub[static_cast<size_t>(g) * nb_ + b];
        if (!std::isfinite(v)) return false;
        m_[g] = std::max(m_[g], v);
        largest_abs = std::max(largest_abs, std::fabs(v));
      }
    }
    if (n_ == 0) return false;
    e_.assign(static_cast<size_t>(g_) * nb_, 0.0);
    s_.assign(g_, 0.0);
    est_.assign(g_, 0.0);
    eta_.assign(g_, 0.0);
    spread_ = 0;
    for (int g = 0; g < g_; g++) {
      for (int b = 0; b < nb_; b++) {
        if (sel[b]) continue;
        const size_t i = static_cast<size_t>(g) * nb_ + b;
        spread_ = std::max(spread_, m_[g] - ub[i]);
        e_[i] = std::exp(ub[i] - m_[g]);
        s_[g] += e_[i];
      }
    }
    s0_ = s_;
    // The chain: per log_add at most u·(4 + |result|) (exp, log1p within 2 ulps, the subtraction and the
    // add rounded; the accumulated error passed on with a factor <= 1); results within U + log n.
    chain_error_ = 2 * n_ * kU * (5 + largest_abs + std::log(n_ + 1.0));
    return true;
  }
  void remove(int b) {
    for (int g = 0; g < g_; g++) s_[g] -= e_[static_cast<size_t>(g) * nb_ + b];
    removed_++;
  }
  // The sums again from their terms over the blocks unselected now (no cancellation left in them);
  // false when there is nothing to gain (no block removed since the last start or rebase).
  bool rebase(const std::vector<char>& sel) {
    if (removed_ == 0) return false;
    n_ = 0;
    for (int b = 0; b < nb_; b++) n_ += !sel[b];
    for (int g = 0; g < g_; g++) {
      double sum = 0;
      const double* e = e_.data() + static_cast<size_t>(g) * nb_;
      for (int b = 0; b < nb_; b++) sum += sel[b] ? 0.0 : e[b];
      s_[g] = sum;
    }
    s0_ = s_;
    removed_ = 0;
    return true;
  }
  // For the selected mass z [group] and the target: -2 when every δ̂ is certainly <= target (stop),
  // g >= 0 when some δ̂ is certainly above it and g is certainly the first largest (continue with
  // worst head g), -1 when the bounds do not settle it (the caller recomputes the chain). A decision
  // lowers `margin` to its relative gap (HeadRecord::margin).
  int decide(const std::vector<double>& z, double target, double& margin) {
    std::vector<double>& est = est_;
    std::vector<double>& eta = eta_;
    for (int g = 0; g < g_; g++) {
      if (!(s_[g] > 0) || !std::isfinite(z[g])) return -1;
      // |S - S_true| <= (n + removed)·u·S0 (sums and subtractions of the same rounded terms) + u·(2 + spread)·S_true (the terms)
      const double rel = 1.01 * ((n_ + removed_) * kU * s0_[g] / s_[g] + kU * (2 + spread_));
      if (!(rel < 1e-3)) return -1;
      const double log_s = std::log(s_[g]), f = m_[g] + log_s;
      const double error = chain_error_ + 2 * (rel / (1 - rel) + kU * (2 * std::fabs(log_s) + std::fabs(f) + 2));
      est[g] = mass_share(z[g], f);
      // mass_share's slope in log_out is at most 1/4; its own rounding on both sides
      eta[g] = 1.5 * (error / 4 + kU * (std::fabs(z[g]) + std::fabs(f) + 8));
    }
    bool all_below = true, some_above = false;
    for (int g = 0; g < g_; g++) {
      all_below &= est[g] + eta[g] <= target;
      some_above |= est[g] - eta[g] > target;
    }
    if (all_below) {
      for (int g = 0; g < g_; g++) margin = std::min(margin, relative_gap(target, est[g]));
      return -2;
    }
    if (!some_above) return -1;
    const int top = static_cast<int>(std::max_element(est.begin(), est.end()) - est.begin());
    for (int g = 0; g < g_; g++) {
      if (g != top && !(est[top] - eta[top] > est[g] + eta[g])) return -1;
    }
    margin = std::min(margin, worst_head_margin(est, top, target));
    return top;
  }

 private:
  static constexpr double kU = 1.1102230246251565e-16;  // 2^-53
  int g_ = 0, nb_ = 0, n_ = 0, removed_ = 0;
  std::vector<double> m_, e_, s_, s0_;
  std::vector<double> est_, eta_;  // [group] decide()'s, sized by start(): it runs once per block added
  double spread_ = 0, chain_error_ = 0;
};

double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

// Per-query-head log-mass bounds of blocks, [group][n_blocks], filled on demand: on the host, or
// where the backend computes them (BlockBounds table `id`, read back when the host needs them).
struct BoundTable {
  int id;
  size_t size;             // groups * n_blocks
  std::vector<double> log_mass;  // [group][n_blocks], allocated when the host first needs it
  std::vector<char> done;  // [n_blocks]
  bool on_host = true;     // log_mass holds every done block's bound
  BoundTable(int id, int groups, int n_blocks) : id(id), size(static_cast<size_t>(groups) * n_blocks), done(n_blocks, 0) {}
  std::vector<double>& host() {
    if (log_mass.empty()) log_mass.assign(size, kNegInf);
    return log_mass;
  }
};

// The host's attention over the chosen blocks: one online-softmax accumulator per query head.
class HostHeadAttention final : public HeadAttention {
 public:
  HostHeadAttention(const LayerBlocks& kv, int kv_head, const double* q, int group, float* out)
      : kv_(kv), h_(kv_head), q_(q), d_(kv.head_dim()), out_(out), acc_(group, HeadAccumulator(kv.head_dim())) {}
  void add_block(int b) override {
    for (size_t g = 0; g < acc_.size(); g++) acc_[g].add_block(q_ + g * d_, kv_.keys(b, h_), kv_.values(b, h_), kv_.fill(b));
  }
  double lse(int g) override { return acc_[g].lse(); }
  void write() override {
    for (size_t g = 0; g < acc_.size(); g++) acc_[g].write(out_ + g * d_);
  }

 private:
  const LayerBlocks& kv_;
  int h_;
  const double* q_;
  size_t d_;
  float* out_;  // [group][head_dim]
  std::vector<HeadAccumulator> acc_;
};

class HostBlockAttention final : public BlockAttention {
 public:
  HostBlockAttention(const LayerBlocks& kv, int group, float* out) : kv_(kv), group_(group), out_(out) {}
  std::unique_ptr<HeadAttention> head(int kv_head, const double* q_scaled) override {
    return std::make_unique<HostHeadAttention>(kv_, kv_head, q_scaled, group_, out_ + static_cast<size_t>(kv_head) * group_ * kv_.head_dim());
  }

 private:
  const LayerBlocks& kv_;
  int group_;
  float* out_;  // [n_heads][head_dim]
};

}  // namespace

DecodeAttention::DecodeAttention(const Params& p, int n_layers, int n_heads, int n_kv_heads, int head_dim)
    : p_(p), n_layers_(n_layers), n_heads_(n_heads), n_kv_heads_(n_kv_heads), head_dim_(head_dim),
      group_(n_kv_heads > 0 ? n_heads / n_kv_heads : 0),
      anchors_(static_cast<size_t>(n_layers) * n_kv_heads), records_(static_cast<size_t>(n_layers) * n_kv_heads) {
  if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 || n_heads % n_kv_heads != 0) {
    throw std::invalid_argument("sparse attention: bad model shape (" + std::to_string(n_heads) + " heads, " + std::to_string(n_kv_heads) + " KV heads)");
  }
  if (p.layer_group < 1) throw std::invalid_argument("sparse attention: layer_group must be >= 1");
  if (!(p.budget > 0 && p.budget <= 1) && p.budget_tokens <= 0) throw std::invalid_argument("sparse attention: budget must be in (0, 1]");
}

const KeySketch& DecodeAttention::sketch(int layer, int kv_head, int block, const LayerBlocks& kv) {
  const int bits = p_.key_bound == KeyBound::Int4 ? 4 : 8;
  const int fill = kv.fill(block);
  auto build = [&] { return build_sketch(kv.keys(block, kv_head), kv.key_min(block, kv_head), kv.key_max(block, kv_head), fill, head_dim_, bits); };
  const long key = (kv.storage_id(block) * n_layers_ + layer) * n_kv_heads_ + kv_head;
  if (fill < kv.block_size()) {  // the tail block still changes: never cached
    sketches_[-1 - key] = build();
    return sketches_[-1 - key];
  }
  auto it = sketches_.find(key);
  if (it == sketches_.end()) it = sketches_.emplace(key, build()).first;
  return it->second;
}

Source DecodeAttention::choose_prhs(int layer, int kv_head, const std::vector<double>& q, Anchor& a, HeadRecord& rec) {
  const int leader = layer - layer % p_.layer_group;
  if (leader != layer) {
    const Anchor& lead = anchors_[static_cast<size_t>(leader) * n_kv_heads_ + kv_head];
    if (lead.scored_at == step_) {
      a.valid = true;
      a.step = step_;
      a.q = q;
      a.core = lead.core;
      a.from_leader = true;
      return Source::Shared;
    }
  }
  if (a.valid && step_ - a.step < p_.max_reuse) {
    const double c = cosine(q, a.q);
    rec.margin = std::min(rec.margin, std::fabs(c - p_.tau));
    if (c >= p_.tau) return a.from_leader ? Source::Shared : Source::Reused;
  }
  return Source::Scored;
}

void DecodeAttention::prepare(int layer, const LayerBlocks& kv, BlockAttention& where) {
  started_ = Started{};
  if (!where.attends_early() || layer < 0 || layer >= n_layers_) return;
  if (kv.n_kv_heads() != n_kv_heads_ || kv.head_dim() != head_dim_) return;
  const int step = layer == 0 ? step_ + 1 : step_;  // attend() counts the step at layer 0
  const int ctx = kv.context(), nb = kv.n_blocks(), bs = kv.block_size();
  started_.layer = layer;
  started_.step = step;
  started_.sel.resize(n_kv_heads_);
  started_.acc.resize(n_kv_heads_);
  started_.candidate.resize(n_kv_heads_);
  started_.bounds.resize(n_kv_heads_);
  for (int h = 0; h < n_kv_heads_; h++) {
    std::vector<char> sel;
    if (p_.mode == Mode::Dense) {
      sel.assign(nb, 1);
    } else if (p_.mode == Mode::Streaming) {
      sel = streaming_mask(p_, ctx, bs, budget_blocks(p_, ctx, bs));
    } else if (p_.mode == Mode::Prhs || p_.mode == Mode::Quest) {  // choose_prhs's sources, the gate assumed to pass
      const std::vector<int>* core = nullptr;
      if (p_.mode == Mode::Prhs) {
        const Anchor& a = anchors_[static_cast<size_t>(layer) * n_kv_heads_ + h];
        const int leader = layer - layer % p_.layer_group;
        const Anchor& lead = anchors_[static_cast<size_t>(leader) * n_kv_heads_ + h];
        if (leader != layer && lead.scored_at == step) core = &lead.core;
        else if (a.valid && step - a.step < p_.max_reuse) core = &a.core;
      }
      if (!core) {  // Scored whatever q is: attend()'s phase 1 bounds and scores these candidates
        if (!where.bounds_early()) continue;
        const std::vector<char> fixed = sink_window_mask(p_, ctx, bs);
        const int floor = p_.mode == Mode::Prhs ? depth_floor(p_, layer, n_layers_, ctx) : 0;
        std::vector<char> candidate(nb);
        for (int b = 0; b < nb; b++) candidate[b] = !fixed[b] & ((b + 1) * bs > floor);
        std::unique_ptr<BlockBounds> bounds = where.bounds(h, nullptr);
        if (!bounds) continue;
        bounds->bound(0, candidate, 0);  // attend()'s first bound of the min/max table: exactly its candidates
        bounds->prefetch_scores(0, candidate);
        started_.candidate[h] = std::move(candidate);
        started_.bounds[h] = std::move(bounds);
        continue;
      }
      sel = sink_window_mask(p_, ctx, bs);
      for (int b : *core) if (b < nb) sel[b] = 1;
    } else {
      continue;
    }
    std::unique_ptr<HeadAttention> acc = where.head(h, nullptr);
    for (int b : blocks_in(sel)) acc->add_block(b);
    acc->start();
    started_.sel[h] = std::move(sel);
    started_.acc[h] = std::move(acc);
  }
  where.launch();
}

bool DecodeAttention::expects_prepared() const {
  if (started_.layer < 0 || started_.acc.empty() || p_.strict) return false;
  for (const std::unique_ptr<HeadAttention>& acc : started_.acc) {
    if (!acc) return false;
  }
  switch (p_.mode) {
    case Mode::Dense:
    case Mode::Streaming:
      return true;
    case Mode::Prhs:  // a certificate may add blocks
      return !(p_.certify_every > 0 && started_.step % p_.certify_every == 0);
    case Mode::Quest:
    case Mode::Oracle:
      return false;
  }
  return false;
}

void DecodeAttention::attend(int layer, const float* q, const LayerBlocks& kv, float* out) {
  HostBlockAttention host(kv, group_, out);
  attend(layer, q, kv, host);
}

void DecodeAttention::attend(int layer, const float* q, const LayerBlocks& kv, BlockAttention& where) {
  if (layer < 0 || layer >= n_layers_) throw std::out_of_range("sparse attention: layer " + std::to_string(layer) + " out of range");
  if (kv.n_kv_heads() != n_kv_heads_ || kv.head_dim() != head_dim_) throw std::invalid_argument("sparse attention: KV blocks do not match the model shape");
  if (layer == 0) { step_++; counters_.steps++; }
  const int ctx = kv.context(), nb = kv.n_blocks(), bs = kv.block_size(), d = head_dim_, G = group_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const int k = budget_blocks(p_, ctx, bs);
  const int summary_bytes = 2 * d * static_cast<int>(sizeof(float));
  const int sketch_bits = p_.key_bound == KeyBound::Int4 ? 4 : 8;

  // One KV head's selection in progress. The KV heads of the layer go through three phases
  // together (choose and start the scores; rank, attend and start the certificate; finish), so a
  // backend that computes on a device waits for it once per phase, not once per KV head. No state
  // is shared between KV heads but the counters (sums) and the sketch cache (keyed by KV head).
  struct Head {
    int h;
    HeadRecord* rec;
    Anchor* anchor;
    std::vector<double> qs;  // [group][head_dim] the group's queries scaled by 1/sqrt(head_dim)
    BoundTable minmax, sketched;
    std::unique_ptr<BlockBounds> device;  // the backend's bounds when it computes them
    bool asked_device = false;
    std::vector<double> exact;  // [group][n_blocks] exact log masses, for the oracle and audits
    std::vector<char> sel, fixed, candidate, unselected;
    Source source = Source::Dense;
    std::unique_ptr<HeadAttention> acc;
    bool acc_started = false;  // acc is prepare()'s
    bool certify = false;
    Head(int h, int groups, int n_blocks) : h(h), minmax(0, groups, n_blocks), sketched(1, groups, n_blocks) {}
  };
  std::vector<Head> heads;
  heads.reserve(n_kv_heads_);
  int took_started = 0;  // KV heads that took prepare()'s attention and added no block to it
  for (int h = 0; h < n_kv_heads_; h++) heads.emplace_back(h, G, nb);

  auto qg = [&](const Head& x, int g) { return x.qs.data() + static_cast<size_t>(g) * d; };
  auto certificate_bounds = [&](Head& x) -> BoundTable& { return p_.key_bound == KeyBound::MinMax ? x.minmax : x.sketched; };
  // The backend's bounds (asked for once, when first needed).
  auto device = [&](Head& x) -> BlockBounds* {
    if (!x.asked_device) x.device = where.bounds(x.h, x.qs.data());
    x.asked_device = true;
    return x.device.get();
  };
  // Fills `t` for blocks in `which` not yet bounded (sketches only for the certificate table);
  // returns whether there were any.
  // launched: prepare() launched this bound already (the bookkeeping only).
  auto bound = [&](Head& x, BoundTable& t, const std::vector<char>& which, bool launched = false) {
    const int bits = &t == &x.sketched ? sketch_bits : 0;
    std::vector<char> fresh(nb);
    long count = 0;
    {  // plain pointers: stores through a char vector would make the compiler reload its fields
      const char* in = which.data();
      char* done = t.done.data();
      char* out = fresh.data();
      for (int b = 0; b < nb; b++) {
        const char f = in[b] & !done[b];
        out[b] = f;
        done[b] |= f;
        count += f;
      }
    }
    if (count == 0) return false;
    // Bytes read: every block's summary, and its low-bit keys for a sketch (all blocks full but the last).
    const int tail_fill = ctx - (nb - 1) * bs;
    counters_.summary_bytes += count * summary_bytes;
    if (bits) counters_.summary_bytes += (count - fresh[nb - 1]) * static_cast<long>(sketch_bytes(bs, d, bits)) +
                                         fresh[nb - 1] * static_cast<long>(sketch_bytes(tail_fill, d, bits));
    if (BlockBounds* on_device = device(x)) {
      if (!launched) on_device->bound(t.id, fresh, bits);
      t.on_host = false;
      return true;
    }
    std::vector<double>& log_mass = t.host();
    for (int b = 0; b < nb; b++) {
      if (!fresh[b]) continue;
      const float* lo = kv.key_min(b, x.h);
      const float* hi = kv.key_max(b, x.h);
      const KeySketch* s = bits ? &sketch(layer, x.h, b, kv) : nullptr;
      for (int g = 0; g < G; g++) {
        log_mass[static_cast<size_t>(g) * nb + b] = s ? sketch_log_bound(qg(x, g), *s, lo, hi) : minmax_log_bound(qg(x, g), lo, hi, kv.fill(b), d);
      }
    }
    return true;
  };
  auto host_table = [&](Head& x, BoundTable& t) -> const std::vector<double>& {
    std::vector<double>& log_mass = t.host();
    if (!t.on_host) device(x)->read(t.id, log_mass.data());
    t.on_host = true;
    return log_mass;
  };
  auto exact_masses = [&](Head& x) {
    if (!x.exact.empty()) return;
    x.exact.resize(static_cast<size_t>(G) * nb);
    for (int g = 0; g < G; g++)
      for (int b = 0; b < nb; b++) x.exact[static_cast<size_t>(g) * nb + b] = exact_log_mass(qg(x, g), kv.keys(b, x.h), kv.fill(b), d);
  };

  // Phase 1: the source of each selection; where one is scored, its bounds and the scores started.
  for (Head& x : heads) {
    const size_t slot = static_cast<size_t>(layer) * n_kv_heads_ + x.h;
    x.rec = &records_[slot];
    *x.rec = HeadRecord{};
    x.anchor = &anchors_[slot];
    x.qs.resize(static_cast<size_t>(G) * d);
    for (int i = 0; i < G * d; i++) x.qs[i] = q[static_cast<size_t>(x.h) * G * d + i] * scale;
    x.sel.assign(nb, 0);
    switch (p_.mode) {
      case Mode::Dense:
        std::fill(x.sel.begin(), x.sel.end(), 1);
        break;
      case Mode::Streaming:
        x.sel = streaming_mask(p_, ctx, bs, k);
        x.source = Source::Fixed;
        break;
      case Mode::Oracle: {
        exact_masses(x);
        const std::vector<char> all(nb, 1);
        for (int b : rank_blocks(x.exact, G, nb, all, k)) x.sel[b] = 1;
        x.source = Source::Scored;
        break;
      }
      case Mode::Quest:
      case Mode::Prhs: {
        x.fixed = sink_window_mask(p_, ctx, bs);
        x.source = p_.mode == Mode::Quest ? Source::Scored : choose_prhs(layer, x.h, x.qs, *x.anchor, *x.rec);
        if (x.source == Source::Scored) {
          const int floor = p_.mode == Mode::Prhs ? depth_floor(p_, layer, n_layers_, ctx) : 0;
          x.candidate.assign(nb, 0);
          const char* fixed = x.fixed.data();
          char* candidate = x.candidate.data();
          for (int b = 0; b < nb; b++) candidate[b] = !fixed[b] & ((b + 1) * bs > floor);
          if (started_.layer == layer && started_.step == step_ && started_.bounds[x.h] && started_.candidate[x.h] == x.candidate &&
              x.minmax.id == 0) {  // prepare() bounded exactly these candidates and started their scores
            x.device = std::move(started_.bounds[x.h]);
            x.asked_device = true;
            bound(x, x.minmax, x.candidate, true);
          } else {
            bound(x, x.minmax, x.candidate);
            if (device(x)) device(x)->prefetch_scores(x.minmax.id, x.candidate);
          }
        }
        break;
      }
    }
  }

  // Phase 2: rank and choose, attend the chosen blocks; where the policy certifies, the bounds of
  // the unselected blocks, their sums and the selected mass started.
  for (Head& x : heads) {
    Anchor& anchor = *x.anchor;
    if ((p_.mode == Mode::Quest || p_.mode == Mode::Prhs)) {
      if (x.source == Source::Scored) {
        const int free = std::max(0, k - static_cast<int>(std::count(x.fixed.begin(), x.fixed.end(), 1)));
        const int m = p_.dilate_top > 0 ? p_.dilate_top : std::max(1, free / 3);
        // Only the ranking's head is read: top_k reads `free` blocks, cis_core max(m, free).
        const int limit = p_.mode == Mode::Quest ? free : std::max(m, free);
        std::vector<double> score;
        if (BlockBounds* on_device = device(x)) {
          score.resize(nb);
          on_device->scores(x.minmax.id, x.candidate, score.data());
        } else {
          score = block_scores(x.minmax.host(), G, nb, x.candidate);
        }
        const std::vector<int> ranked = rank_by_score(score, x.candidate, limit);
        x.rec->margin = std::min(x.rec->margin, ranking_margin(score, x.candidate, ranked));
        anchor.core = p_.mode == Mode::Quest ? top_k(ranked, free) : cis_core(ranked, x.candidate, free, m, p_.dilation);
        // The anchor's sinks and window stay in the reused set: a block leaving the window
        // after the anchor is still read until the next anchor.
        for (int b : blocks_in(x.fixed)) anchor.core.push_back(b);
        anchor.valid = true;
        anchor.step = step_;
        anchor.q = x.qs;
        anchor.from_leader = false;
        anchor.scored_at = step_;
      }
      x.sel = x.fixed;
      for (int b : anchor.core) if (b < nb) x.sel[b] = 1;
    }
    if (x.source == Source::Scored) counters_.scoring_passes++;

    if (started_.layer == layer && started_.step == step_ && started_.acc[x.h] && started_.sel[x.h] == x.sel) {
      x.acc = std::move(started_.acc[x.h]);  // prepare() started exactly these blocks
      x.acc_started = true;
      took_started++;
    } else {
      x.acc = where.head(x.h, x.qs.data());
      for (int b : blocks_in(x.sel)) x.acc->add_block(b);
    }

    // Baselines certify only in strict mode (a certificate is PrHS's own work, not theirs).
    x.certify = p_.mode != Mode::Dense && (p_.strict ||
        (p_.mode == Mode::Prhs && (x.source == Source::Scored || (p_.certify_every > 0 && step_ % p_.certify_every == 0))));
    if (x.certify) {
      x.unselected.resize(nb);
      const char* sel = x.sel.data();
      char* unselected = x.unselected.data();
      for (int b = 0; b < nb; b++) unselected[b] = !sel[b];
      const bool had_bounds = !bound(x, certificate_bounds(x), x.unselected);
      if (!had_bounds && x.source != Source::Scored) counters_.certify_passes++;
    }
    // The selected mass before the certificate's sums: a device then attends while its bounds are made.
    if (x.certify || p_.audit || p_.mode == Mode::Oracle) x.acc->prefetch_lse();
    if (x.certify && !certificate_bounds(x).on_host) device(x)->prefetch_lse(certificate_bounds(x).id, x.unselected);
  }

  // Phase 3: the certificate and its expansion, the audit, the output and the record.
  for (Head& x : heads) {
    HeadRecord& rec = *x.rec;
    std::vector<char>& sel = x.sel;
    HeadAttention& acc = *x.acc;
    if (p_.mode == Mode::Dense) {
      rec.delta_hat = 0;
    } else if (x.certify) {
      BoundTable& cb = certificate_bounds(x);
      std::vector<double> delta_hat(G), lse_out(G);
      const std::vector<double>* table = nullptr;  // the certificate's bounds on the host
      std::vector<double> z;  // [group] the selected mass once the expansion adds blocks (before: acc.lse)
      auto recompute = [&] {
        if (table) {  // each head's chain in block order, the heads' chains side by side (independent, so they overlap)
          std::fill(lse_out.begin(), lse_out.end(), kNegInf);
          const double* t = table->data();
          for (int b = 0; b < nb; b++) {
            if (sel[b]) continue;
            for (int g = 0; g < G; g++) lse_out[g] = log_add(lse_out[g], t[static_cast<size_t>(g) * nb + b]);
          }
        }
        for (int g = 0; g < G; g++) delta_hat[g] = mass_share(z.empty() ? acc.lse(g) : z[g], lse_out[g]);
      };
      // The first certificate from the backend's sums where it bounds; the expansion (rare when the
      // budget holds) recomputes them on the host from the table read back.
      if (cb.on_host) table = &cb.host();
      else device(x)->lse(cb.id, x.unselected, lse_out.data());
      recompute();
      // Expansion: add the unselected block with the largest bound for the worst query head.
      // Where the backend computes blocks' exact masses (BlockBounds::masses: the device's), they come
      // in batches and the selected mass after each block is z = log_add(z, its mass), instead of
      // acc.lse (a device's fold and read-back per block); the blocks are attended at acc.write().
      // The host (no BlockBounds) reads acc.lse after each block into z.
      enum class Masses { Untried, Batched, PerBlock } how = device(x) ? Masses::Untried : Masses::PerBlock;
      // U after each block comes from running sums (RunningOut) where their error bounds settle the
      // loop's decisions, else from the chain (recompute): the same decisions, and the chain for the
      // δ̂ recorded. REPO_LENS_PRHS_RUNNING_SUMS=0 recomputes the chain every block.
      static const bool running_sums = [] {
        const char* v = std::getenv("REPO_LENS_PRHS_RUNNING_SUMS");
        return !(v && std::string(v) == "0");
      }();
      std::vector<double> mass;  // [n_blocks][group] where fetched
      std::vector<char> have;    // [n_blocks]
      int per_head = kFirstExpansionBatch;
      RunningOut running;
      std::optional<ExpansionOrder> order;  // from the first block added
      bool run = false;          // running holds U for the blocks unselected now
      bool exact = true;         // lse_out and delta_hat are the chain's for the blocks unselected now
      while (p_.mode == Mode::Prhs) {
        int worst = exact ? -1 : running.decide(z, p_.delta_target, rec.margin);
        if (worst == -1 && !exact && running.rebase(sel)) worst = running.decide(z, p_.delta_target, rec.margin);
        if (worst < 0 && !exact) {
          recompute();
          exact = true;
        }
        if (exact) {
          const int top = static_cast<int>(std::max_element(delta_hat.begin(), delta_hat.end()) - delta_hat.begin());
          if (!(delta_hat[top] > p_.delta_target)) {
            rec.margin = std::min(rec.margin, relative_gap(p_.delta_target, delta_hat[top]));
            break;
          }
          rec.margin = std::min(rec.margin, worst_head_margin(delta_hat, top, p_.delta_target));
          worst = top;
        }
        if (!order) {  // the first block to add
          if (!table) table = &host_table(x, cb);
          order.emplace(*table, G, nb);
          run = running_sums && running.start(*table, G, nb, sel);
          z.resize(G);
          for (int g = 0; g < G; g++) z[g] = acc.lse(g);  // the selected mass before any block is added
        }
        int second = -1;
        const int best = order->next(worst, sel, second);
        if (best < 0) break;
        const double* row = table->data() + static_cast<size_t>(worst) * nb;
        if (second >= 0) rec.margin = std::min(rec.margin, (row[best] - row[second]) / (1 + std::fabs(row[best])));
        if (how == Masses::Untried || (how == Masses::Batched && !have[best])) {
          if (how == Masses::Untried) {
            mass.assign(static_cast<size_t>(nb) * G, kNegInf);
            have.assign(nb, 0);
          }
          const std::vector<int> want = expansion_batch(*table, G, nb, sel, have, per_head);
          per_head = nb;  // the next batch: every unselected block left
          std::vector<double> got(want.size() * G);
          if (device(x)->masses(want, got.data())) {
            how = Masses::Batched;
            for (size_t i = 0; i < want.size(); i++) {
              std::copy(got.begin() + i * G, got.begin() + (i + 1) * G, mass.begin() + static_cast<size_t>(want[i]) * G);
              have[want[i]] = 1;
            }
          } else {
            how = Masses::PerBlock;
          }
        }
        if (how == Masses::Batched && !have[best]) throw std::logic_error("sparse attention: an expansion batch missed the block it adds");
        sel[best] = 1;
        acc.add_block(best);
        rec.expanded++;
        for (int g = 0; g < G; g++) z[g] = how == Masses::Batched ? log_add(z[g], mass[static_cast<size_t>(best) * G + g]) : acc.lse(g);
        if (run) {
          running.remove(best);
          exact = false;
        } else {
          recompute();
        }
      }
      if (!exact) recompute();  // (only after `best < 0`: every block selected)
      rec.delta_hat = *std::max_element(delta_hat.begin(), delta_hat.end());
      counters_.certified++;
      if (rec.expanded > 0) {
        counters_.expanded++;
        if (x.source != Source::Scored) x.anchor->valid = false;  // the reused set was not good enough: re-score next step
      }
      if (rec.expanded > 0 && x.acc_started) took_started--;
    }
    if (p_.audit || p_.mode == Mode::Oracle) {
      exact_masses(x);
      double worst = 0;
      for (int g = 0; g < G; g++) {
        double lse_out = kNegInf;
        for (int b = 0; b < nb; b++) if (!sel[b]) lse_out = log_add(lse_out, x.exact[static_cast<size_t>(g) * nb + b]);
        worst = std::max(worst, mass_share(acc.lse(g), lse_out));
      }
      rec.delta = worst;
      if (p_.mode == Mode::Oracle) rec.delta_hat = worst;  // exact scores: the bound is the value
    }
    if (p_.mode == Mode::Dense && p_.audit) rec.delta = 0;

    acc.write();
    rec.source = x.source;
    rec.blocks = blocks_in(sel);
    for (int b : rec.blocks) rec.entries_read += std::min(bs, ctx - b * bs);
    counters_.selections++;
    counters_.entries_read += rec.entries_read;
    counters_.entries_context += ctx;
  }
  where.finish();
  started_ = Started{};  // heads prepare() started that the selection did not take
  took_prepared_ = took_started == n_kv_heads_;
}

}  // namespace rl::prhs
