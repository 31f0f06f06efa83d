// Test and measurement driver for native/prhs on synthetic keys, built by the tests and benches
// with g++ (no addon needed). Each command prints one JSON object per line.
//   properties  δ ≤ δ̂ on every step, δ̂ ≤ δ_target after expansion, full budget = dense,
//               over random Gaussian keys and structured keys, for every mode and key bound.
//   tightness   δ̂ ÷ δ and expansion rates on structured head-dim-128 keys per key bound.
//   ranking     rank_blocks with a limit gives the full ranking's prefix, and cis_core / top_k on that
//               prefix the full ranking's sets, on random tables with many ties.
//   expansion-order  ExpansionOrder's picks are a plain pass's over every block, on random tables with
//               many ties (some with NaN bounds), as heads take turns and blocks are selected.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "prhs/decode_attention.h"
#include "prhs/expansion_order.h"
#include "prhs/log_math.h"
#include "prhs/selection.h"

using namespace rl::prhs;

namespace {

// Keys and values of every layer for a growing synthetic sequence, with exact min/max summaries.
class SyntheticKv {
 public:
  SyntheticKv(int layers, int kv_heads, int head_dim, int block_size, int max_tokens)
      : layers_(layers), kv_heads_(kv_heads), d_(head_dim), bs_(block_size), max_blocks_((max_tokens + block_size - 1) / block_size),
        k_(size(max_blocks_ * block_size)), v_(size(max_blocks_ * block_size)), lo_(size(max_blocks_)), hi_(size(max_blocks_)) {}

  // Appends one position's keys/values [kv_heads][head_dim] for `layer`; call per layer, then advance().
  void write(int layer, const std::vector<float>& k, const std::vector<float>& v) {
    const int pos = length_, b = pos / bs_, j = pos % bs_;
    for (int h = 0; h < kv_heads_; h++) {
      float* kd = &k_[key_index(layer, b, h) + static_cast<size_t>(j) * d_];
      float* vd = &v_[key_index(layer, b, h) + static_cast<size_t>(j) * d_];
      float* lo = &lo_[sum_index(layer, b, h)];
      float* hi = &hi_[sum_index(layer, b, h)];
      for (int i = 0; i < d_; i++) {
        kd[i] = k[h * d_ + i];
        vd[i] = v[h * d_ + i];
        lo[i] = j == 0 ? kd[i] : std::min(lo[i], kd[i]);
        hi[i] = j == 0 ? kd[i] : std::max(hi[i], kd[i]);
      }
    }
  }
  void advance() { length_++; }
  int length() const { return length_; }

  class Layer : public LayerBlocks {
   public:
    Layer(const SyntheticKv& s, int layer) : s_(s), layer_(layer) {}
    int n_kv_heads() const override { return s_.kv_heads_; }
    int head_dim() const override { return s_.d_; }
    int block_size() const override { return s_.bs_; }
    int context() const override { return s_.length_; }
    long storage_id(int b) const override { return b; }
    const float* keys(int b, int h) const override { return &s_.k_[s_.key_index(layer_, b, h)]; }
    const float* values(int b, int h) const override { return &s_.v_[s_.key_index(layer_, b, h)]; }
    const float* key_min(int b, int h) const override { return &s_.lo_[s_.sum_index(layer_, b, h)]; }
    const float* key_max(int b, int h) const override { return &s_.hi_[s_.sum_index(layer_, b, h)]; }
   private:
    const SyntheticKv& s_;
    int layer_;
  };
  Layer layer(int l) const { return Layer(*this, l); }

 private:
  size_t size(int per_layer_positions) const { return static_cast<size_t>(layers_) * per_layer_positions * kv_heads_ * d_; }
  size_t key_index(int layer, int b, int h) const { return ((static_cast<size_t>(layer) * max_blocks_ + b) * kv_heads_ + h) * bs_ * d_; }
  size_t sum_index(int layer, int b, int h) const { return ((static_cast<size_t>(layer) * max_blocks_ + b) * kv_heads_ + h) * d_; }
  int layers_, kv_heads_, d_, bs_, max_blocks_;
  int length_ = 0;
  std::vector<float> k_, v_, lo_, hi_;
};

// Plain dense softmax attention of one query head over all positions (the independent reference).
void dense_reference(const LayerBlocks& kv, int kv_head, const float* q, float* out) {
  const int d = kv.head_dim(), n = kv.context();
  std::vector<double> s(n);
  double mx = -1e300;
  for (int t = 0; t < n; t++) {
    const float* k = kv.keys(t / kv.block_size(), kv_head) + static_cast<size_t>(t % kv.block_size()) * d;
    double dot = 0;
    for (int i = 0; i < d; i++) dot += static_cast<double>(q[i]) * k[i];
    s[t] = dot / std::sqrt(static_cast<double>(d));
    mx = std::max(mx, s[t]);
  }
  std::vector<double> o(d, 0.0);
  double z = 0;
  for (int t = 0; t < n; t++) {
    const double p = std::exp(s[t] - mx);
    z += p;
    const float* v = kv.values(t / kv.block_size(), kv_head) + static_cast<size_t>(t % kv.block_size()) * d;
    for (int i = 0; i < d; i++) o[i] += p * v[i];
  }
  for (int i = 0; i < d; i++) out[i] = static_cast<float>(o[i] / z);
}

// How keys, values and queries are drawn.
struct Workload {
  std::string name;
  int head_dim = 128, heads = 8, kv_heads = 2, layers = 2, block_size = 16, prompt = 512, steps = 48;
  bool structured = true;  // false: i.i.d. Gaussian
  double query_gain = 1.0; // scales structured queries: higher gives peakier attention
  unsigned seed = 1;
};

// Structured keys like a trained model's: a mean with a few large outlier channels, a low-rank
// component, small noise, RoPE by position, a strong attention sink at position 0, and a few
// "needle" positions aligned with the queries; queries drift slowly from step to step.
class Generator {
 public:
  explicit Generator(const Workload& w) : w_(w), rng_(w.seed) {
    const int d = w.head_dim, rank = 8;
    auto gauss = [&](std::vector<float>& x, size_t n, double sd) { std::normal_distribution<double> N(0, sd); x.resize(n); for (auto& v : x) v = static_cast<float>(N(rng_)); };
    gauss(mean_, static_cast<size_t>(w.layers) * w.kv_heads * d, 0.3);
    for (int lh = 0; lh < w.layers * w.kv_heads; lh++)
      for (int c : outlier_channels()) mean_[static_cast<size_t>(lh) * d + c] += (c % 2 ? 6.0f : -5.0f);
    gauss(basis_, static_cast<size_t>(w.layers) * w.kv_heads * rank * d, 1.0 / std::sqrt(static_cast<double>(rank)));
    // Trained models' keys put most of their energy in the slowly rotating RoPE dimensions.
    for (size_t i = 0; i < basis_.size(); i++) basis_[i] *= static_cast<float>(0.2 + 1.8 * static_cast<double>(i % (d / 2)) / (d / 2));
    gauss(qbase_, static_cast<size_t>(w.layers) * w.heads * d, 1.0);
    gauss(qdrift_, qbase_.size(), 0.0);
    std::uniform_int_distribution<int> pick(1, std::max(1, w.prompt - 1));
    for (int i = 0; i < 6; i++) needles_.push_back(pick(rng_));
  }

  // Keys/values of position `pos` for one layer, [kv_heads][head_dim] each.
  void kv_at(int layer, int pos, std::vector<float>& k, std::vector<float>& v) {
    const int d = w_.head_dim, rank = 8;
    std::normal_distribution<double> N(0, 1);
    k.assign(static_cast<size_t>(w_.kv_heads) * d, 0.0f);
    v.assign(k.size(), 0.0f);
    for (int h = 0; h < w_.kv_heads; h++) {
      float* kh = &k[static_cast<size_t>(h) * d];
      if (!w_.structured) {
        for (int i = 0; i < d; i++) kh[i] = static_cast<float>(N(rng_));
      } else {
        const size_t lh = static_cast<size_t>(layer) * w_.kv_heads + h;
        for (int i = 0; i < d; i++) kh[i] = mean_[lh * d + i] + static_cast<float>(0.1 * N(rng_));
        // Low-rank content that changes slowly along the sequence (AR(1), rho 0.98) and jumps at
        // segment starts (every 128 positions: a file, a section), as neighbouring tokens' keys do.
        std::vector<double>& z = content_[lh];
        z.resize(rank, 0.0);
        for (int r = 0; r < rank; r++) {
          z[r] = pos % 128 == 0 ? 2.0 * N(rng_) : 0.98 * z[r] + 0.199 * 2.0 * N(rng_);
          for (int i = 0; i < d; i++) kh[i] += static_cast<float>(z[r] * basis_[(lh * rank + r) * d + i]);
        }
        // Sink and needles: keys aligned with the group's first query head in the slowly
        // rotating (low-frequency) RoPE dimensions, where trained models keep such features.
        const float gain = pos == 0 ? 3.0f : std::count(needles_.begin(), needles_.end(), pos) ? 2.0f : 0.0f;
        if (gain > 0) {
          const float* qd = &qbase_[(static_cast<size_t>(layer) * w_.heads + h * (w_.heads / w_.kv_heads)) * d];
          for (int i = 0; i < d; i++) if (low_frequency(i)) kh[i] += gain * qd[i];
        }
        rope(kh, pos);
      }
      for (int i = 0; i < d; i++) v[static_cast<size_t>(h) * d + i] = static_cast<float>(N(rng_));
    }
  }

  // Queries of all heads for one layer at decode position `pos`, [heads][head_dim].
  void query_at(int layer, int pos, std::vector<float>& q) {
    const int d = w_.head_dim;
    std::normal_distribution<double> N(0, 1);
    q.resize(static_cast<size_t>(w_.heads) * d);
    for (int h = 0; h < w_.heads; h++) {
      const size_t base = (static_cast<size_t>(layer) * w_.heads + h) * d;
      for (int i = 0; i < d; i++) {
        if (!w_.structured) { q[static_cast<size_t>(h) * d + i] = static_cast<float>(N(rng_)); continue; }
        qdrift_[base + i] = static_cast<float>(0.9 * qdrift_[base + i] + 0.15 * N(rng_));
        q[static_cast<size_t>(h) * d + i] = static_cast<float>(w_.query_gain * (qbase_[base + i] + qdrift_[base + i]));
      }
      if (w_.structured) rope(&q[static_cast<size_t>(h) * d], pos);
    }
  }

 private:
  // The last 15% of each rotate_half half: RoPE frequencies below ~4e-4 rad per token.
  bool low_frequency(int i) const { const int half = w_.head_dim / 2; return i % half >= (half * 85) / 100; }
  // Four large-magnitude channels, in low-frequency dimensions as in trained models' keys.
  std::vector<int> outlier_channels() const {
    const int half = w_.head_dim / 2;
    return {half - 1, half - 3, w_.head_dim - 2, w_.head_dim - 4};
  }
  void rope(float* x, int pos) const {  // rotate_half convention, theta 10000
    const int half = w_.head_dim / 2;
    for (int i = 0; i < half; i++) {
      const double a = pos * std::pow(10000.0, -2.0 * i / w_.head_dim);
      const double x0 = x[i], x1 = x[i + half];
      x[i] = static_cast<float>(x0 * std::cos(a) - x1 * std::sin(a));
      x[i + half] = static_cast<float>(x0 * std::sin(a) + x1 * std::cos(a));
    }
  }
  Workload w_;
  std::mt19937 rng_;
  std::vector<float> mean_, basis_, qbase_, qdrift_;
  std::map<size_t, std::vector<double>> content_;  // per (layer, KV head): the content state
  std::vector<int> needles_;
};

struct RunResult {
  long checks = 0, violations = 0, over_target = 0, certified = 0, expanded = 0;
  double worst_excess = 0;  // max(δ - δ̂)
  double max_out_err = 0;   // max |out - dense reference|
  std::vector<double> ratios;  // δ̂ / δ where δ > 1e-9
  double sum_delta = 0, sum_delta_hat = 0, max_delta = 0;
  Counters counters;
};

RunResult run(const Workload& w, const Params& p) {
  Generator gen(w);
  SyntheticKv kv(w.layers, w.kv_heads, w.head_dim, w.block_size, w.prompt + w.steps);
  std::vector<float> k, v, q, out(static_cast<size_t>(w.heads) * w.head_dim), ref(w.head_dim);
  for (int pos = 0; pos < w.prompt; pos++) {
    for (int l = 0; l < w.layers; l++) { gen.kv_at(l, pos, k, v); kv.write(l, k, v); }
    kv.advance();
  }
  DecodeAttention att(p, w.layers, w.heads, w.kv_heads, w.head_dim);
  RunResult r;
  const int group = w.heads / w.kv_heads;
  for (int s = 0; s < w.steps; s++) {
    const int pos = kv.length();
    for (int l = 0; l < w.layers; l++) { gen.kv_at(l, pos, k, v); kv.write(l, k, v); }
    kv.advance();
    for (int l = 0; l < w.layers; l++) {
      gen.query_at(l, pos, q);
      const auto layer = kv.layer(l);
      att.attend(l, q.data(), layer, out.data());
      for (int hq = 0; hq < w.heads; hq++) {
        dense_reference(layer, hq / group, &q[static_cast<size_t>(hq) * w.head_dim], ref.data());
        for (int i = 0; i < w.head_dim; i++) r.max_out_err = std::max(r.max_out_err, static_cast<double>(std::fabs(out[static_cast<size_t>(hq) * w.head_dim + i] - ref[i])));
      }
      for (int h = 0; h < w.kv_heads; h++) {
        const HeadRecord& rec = att.records()[static_cast<size_t>(l) * w.kv_heads + h];
        if (rec.delta >= 0) { r.sum_delta += rec.delta; r.max_delta = std::max(r.max_delta, rec.delta); }
        if (rec.delta_hat < 0) continue;
        r.certified++;
        r.sum_delta_hat += rec.delta_hat;
        if (rec.expanded > 0) r.expanded++;
        if (p.mode == Mode::Prhs && rec.delta_hat > p.delta_target) r.over_target++;
        if (rec.delta < 0) continue;
        r.checks++;
        if (rec.delta > rec.delta_hat) { r.violations++; r.worst_excess = std::max(r.worst_excess, rec.delta - rec.delta_hat); }
        if (rec.delta > 1e-9) r.ratios.push_back(rec.delta_hat / rec.delta);
      }
    }
  }
  r.counters = att.counters();
  return r;
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::Dense: return "dense";
    case Mode::Prhs: return "prhs";
    case Mode::Quest: return "quest";
    case Mode::Oracle: return "oracle";
    case Mode::Streaming: return "streaming";
  }
  return "?";
}
const char* bound_name(KeyBound b) { return b == KeyBound::MinMax ? "minmax" : b == KeyBound::Int8 ? "int8" : "int4"; }

double quantile(std::vector<double> x, double q) {
  if (x.empty()) return -1;
  std::sort(x.begin(), x.end());
  return x[static_cast<size_t>(q * (x.size() - 1))];
}
double geomean(const std::vector<double>& x) {
  if (x.empty()) return -1;
  double s = 0;
  for (double v : x) s += std::log(v);
  return std::exp(s / x.size());
}

void print(const Workload& w, const Params& p, const RunResult& r) {
  const Counters& c = r.counters;
  std::printf("{\"workload\":\"%s\",\"mode\":\"%s\",\"keyBound\":\"%s\",\"budget\":%g,\"strict\":%s,\"deltaTarget\":%g,"
              "\"checks\":%ld,\"violations\":%ld,\"worstExcess\":%.3g,\"overTarget\":%ld,\"certified\":%ld,\"expanded\":%ld,"
              "\"maxOutErr\":%.3g,\"meanDelta\":%.4g,\"maxDelta\":%.4g,\"meanDeltaHat\":%.4g,"
              "\"ratioMedian\":%.4g,\"ratioGeomean\":%.4g,\"ratioP90\":%.4g,\"effectiveBudget\":%.4f,"
              "\"scoringPassesPerToken\":%.4g,\"certifyPassesPerToken\":%.4g,\"summaryBytesPerToken\":%.4g,\"keyBytesPerToken\":%.4g,"
              "\"headDim\":%d,\"blockSize\":%d,\"prompt\":%d,\"steps\":%d}\n",
              w.name.c_str(), mode_name(p.mode), bound_name(p.key_bound), p.budget, p.strict ? "true" : "false", p.delta_target,
              r.checks, r.violations, r.worst_excess, r.over_target, r.certified, r.expanded,
              r.max_out_err, r.checks ? r.sum_delta / r.checks : 0.0, r.max_delta, r.certified ? r.sum_delta_hat / r.certified : 0.0,
              quantile(r.ratios, 0.5), geomean(r.ratios), quantile(r.ratios, 0.9),
              c.entries_context ? static_cast<double>(c.entries_read) / c.entries_context : 0.0,
              static_cast<double>(c.scoring_passes) / c.steps, static_cast<double>(c.certify_passes) / c.steps,
              static_cast<double>(c.summary_bytes) / c.steps, 4.0 * c.entries_read * w.head_dim / c.steps,
              w.head_dim, w.block_size, w.prompt, w.steps);
}

std::vector<Workload> property_workloads() {
  std::vector<Workload> out;
  unsigned seed = 11;
  for (int d : {8, 64, 128}) {
    for (bool structured : {false, true}) {
      Workload w;
      w.name = std::string(structured ? "structured" : "gaussian") + "-d" + std::to_string(d);
      w.head_dim = d; w.structured = structured; w.prompt = 300; w.steps = 24; w.block_size = d == 8 ? 8 : 16;
      w.seed = seed++;
      out.push_back(w);
    }
  }
  return out;
}

void properties() {
  for (const Workload& w : property_workloads()) {
    for (Mode m : {Mode::Prhs, Mode::Quest, Mode::Streaming, Mode::Oracle}) {
      for (KeyBound kb : {KeyBound::MinMax, KeyBound::Int8, KeyBound::Int4}) {
        if (m == Mode::Oracle && kb != KeyBound::MinMax) continue;
        for (double budget : {0.1, 1.0}) {
          Params p;
          p.mode = m; p.key_bound = kb; p.budget = budget; p.strict = true; p.audit = true;
          p.window = 2 * w.block_size; p.layer_group = 2;
          print(w, p, run(w, p));
        }
      }
    }
  }
}

// Structured head-dim-128 keys at 2048 positions, blocks of 32, 25% budget, certificate on every
// step; query gain 1 (flatter attention) and 2 (peakier).
void tightness() {
  for (double gain : {1.0, 2.0}) {
    Workload w;
    w.name = "structured-d128-gain" + std::to_string(static_cast<int>(gain));
    w.head_dim = 128; w.prompt = 2048; w.steps = 32; w.block_size = 32; w.layers = 2; w.seed = 7; w.query_gain = gain;
    for (Mode m : {Mode::Oracle, Mode::Quest, Mode::Streaming}) {  // what the budget allows, for reference
      Params p;
      p.mode = m; p.strict = true; p.audit = true;
      print(w, p, run(w, p));
    }
    for (KeyBound kb : {KeyBound::MinMax, KeyBound::Int8, KeyBound::Int4}) {
      for (double target : {1.0, 0.05}) {  // 1.0: no expansion (raw tightness); 0.05: the default target
        Params p;
        p.mode = Mode::Prhs; p.key_bound = kb; p.strict = true; p.audit = true; p.delta_target = target;
        print(w, p, run(w, p));
      }
    }
  }
}

// ranking_margin as it was first written: the gap to every candidate left out, one by one.
double margin_one_by_one(const std::vector<double>& score, const std::vector<char>& candidate, const std::vector<int>& ranked) {
  double margin = std::numeric_limits<double>::infinity();
  for (size_t i = 1; i < ranked.size(); i++) margin = std::min(margin, relative_gap(score[ranked[i - 1]], score[ranked[i]]));
  if (ranked.empty()) return margin;
  std::vector<char> in(candidate.size(), 0);
  for (int b : ranked) in[b] = 1;
  for (size_t b = 0; b < candidate.size(); b++) {
    if (candidate[b] && !in[b]) margin = std::min(margin, relative_gap(score[ranked.back()], score[b]));
  }
  return margin;
}

// The policy ranks only the first max(m, free) blocks (selection.h): the sets it builds from them must
// be the ones a full ranking gives. Bounds drawn from few values so that scores tie often; one table in
// four is long (512 to 5,000 blocks, up to 1,000 values) with a short ranking, where rank_by_score
// first filters by a threshold from a sample. ranking_margin is checked against the gap to each block
// left out, on those scores and on raw ones with negatives, zeros and NaN.
void ranking() {
  std::mt19937 rng(7);
  long tables = 0, tied = 0, long_short = 0, prefix_mismatches = 0, set_mismatches = 0, margin_mismatches = 0;
  auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
  for (int t = 0; t < 4000; t++) {
    const bool is_long = t % 4 == 3;
    const int groups = 1 + static_cast<int>(rng() % 4), nb = is_long ? 512 + static_cast<int>(rng() % 4489) : 1 + static_cast<int>(rng() % 300);
    const int levels = 1 + static_cast<int>(rng() % (is_long && t % 8 == 3 ? 1000 : 6));
    std::vector<double> log_mass(static_cast<size_t>(groups) * nb);
    for (double& x : log_mass) x = static_cast<double>(rng() % levels);
    std::vector<char> candidate(nb);
    for (char& c : candidate) c = rng() % 5 != 0;
    const std::vector<int> full = rank_blocks(log_mass, groups, nb, candidate);
    const int count = static_cast<int>(rng() % (is_long ? nb / 10 + 1 : nb + 1)), m = 1 + static_cast<int>(rng() % 8), r = static_cast<int>(rng() % 3);
    const int limit = std::max(m, count);
    const std::vector<int> head = rank_blocks(log_mass, groups, nb, candidate, limit);
    const std::vector<int> expected(full.begin(), full.begin() + std::min<size_t>(full.size(), limit));
    tables++;
    long_short += is_long && static_cast<size_t>(limit) * 8 <= full.size();
    if (head != expected) prefix_mismatches++;
    if (cis_core(head, candidate, count, m, r) != cis_core(full, candidate, count, m, r) || top_k(head, count) != top_k(full, count)) set_mismatches++;
    const std::vector<double> score = block_scores(log_mass, groups, nb, candidate);
    if (!same(ranking_margin(score, candidate, head), margin_one_by_one(score, candidate, head))) margin_mismatches++;
    std::vector<double> raw(nb);
    for (double& x : raw) x = rng() % 7 == 0 ? -static_cast<double>(rng() % 3) : rng() % 11 == 0 ? NAN : static_cast<double>(rng() % levels);
    const std::vector<int> raw_head = rank_by_score(raw, candidate, limit);
    if (!same(ranking_margin(raw, candidate, raw_head), margin_one_by_one(raw, candidate, raw_head))) margin_mismatches++;
    std::vector<double> sorted(log_mass.begin(), log_mass.begin() + nb);
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) tied++;
  }
  std::printf("{\"tables\": %ld, \"tied\": %ld, \"long_short\": %ld, \"prefix_mismatches\": %ld, \"set_mismatches\": %ld, \"margin_mismatches\": %ld}\n",
              tables, tied, long_short, prefix_mismatches, set_mismatches, margin_mismatches);
}

// The expansion's picks (decode_attention.cc) by ExpansionOrder against a pass over every block:
// the same block, and a runner-up with the same bound. The worst head changes at random, as it does
// when the certificate's δ̂ of the group's heads take turns.
void expansion_order() {
  std::mt19937 rng(11);
  long tables = 0, picks = 0, tied = 0, with_nan = 0, block_mismatches = 0, second_mismatches = 0;
  for (int t = 0; t < 3000; t++) {
    const int groups = 1 + static_cast<int>(rng() % 6), nb = 1 + static_cast<int>(rng() % 400);
    const int levels = 1 + static_cast<int>(rng() % 8);
    std::vector<double> table(static_cast<size_t>(groups) * nb);
    for (double& x : table) x = rng() % 16 == 0 ? kNegInf : static_cast<double>(rng() % levels) - 3.5;
    if (rng() % 10 == 0) {
      table[rng() % table.size()] = std::nan("");
      with_nan++;
    }
    std::vector<char> sel(nb);
    for (char& c : sel) c = rng() % 4 == 0;
    ExpansionOrder order(table, groups, nb);
    tables++;
    for (;;) {
      const int g = static_cast<int>(rng() % groups);
      const double* row = table.data() + static_cast<size_t>(g) * nb;
      int best = -1, second = -1;
      for (int b = 0; b < nb; b++) {
        if (sel[b]) continue;
        if (best < 0 || row[b] > row[best]) second = best, best = b;
        else if (second < 0 || row[b] > row[second]) second = b;
      }
      int got_second = -2;
      const int got = order.next(g, sel, got_second);
      picks++;
      if (got != best) block_mismatches++;
      if ((second < 0) != (got_second < 0) || (second >= 0 && !(row[second] == row[got_second] || (std::isnan(row[second]) && std::isnan(row[got_second])))))
        second_mismatches++;
      if (second >= 0 && row[second] == row[best]) tied++;
      if (best < 0) break;
      sel[best] = 1;
    }
  }
  std::printf("{\"tables\": %ld, \"picks\": %ld, \"tied\": %ld, \"withNan\": %ld, \"blockMismatches\": %ld, \"secondMismatches\": %ld}\n",
              tables, picks, tied, with_nan, block_mismatches, second_mismatches);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "properties") properties();
  else if (cmd == "tightness") tightness();
  else if (cmd == "ranking") ranking();
  else if (cmd == "expansion-order") expansion_order();
  else { std::fprintf(stderr, "usage: prhs-harness properties|tightness|ranking|expansion-order\n"); return 2; }
  return 0;
}
