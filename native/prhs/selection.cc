#include "prhs/selection.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "prhs/log_math.h"

namespace rl::prhs {

namespace {
int blocks_of(int context, int block_size) { return (context + block_size - 1) / block_size; }
}  // namespace

int budget_blocks(const Params& p, int context, int block_size) {
  const double tokens = p.budget_tokens > 0 ? p.budget_tokens : std::ceil(p.budget * context);
  const int k = static_cast<int>(std::ceil(tokens / block_size));
  return std::clamp(k, 1, blocks_of(context, block_size));
}

std::vector<char> sink_window_mask(const Params& p, int context, int block_size) {
  const int nb = blocks_of(context, block_size);
  std::vector<char> mask(nb, 0);
  const int sink_end = std::min(nb, blocks_of(std::min(p.sinks, context), block_size));
  for (int b = 0; b < sink_end; b++) mask[b] = 1;
  if (p.window > 0) {
    const int first = std::max(0, context - p.window) / block_size;
    for (int b = first; b < nb; b++) mask[b] = 1;
  }
  return mask;
}

std::vector<char> streaming_mask(const Params& p, int context, int block_size, int k) {
  const int nb = blocks_of(context, block_size);
  std::vector<char> mask(nb, 0);
  const int sink_end = std::min({nb, k, blocks_of(std::min(p.sinks, context), block_size)});
  for (int b = 0; b < sink_end; b++) mask[b] = 1;
  for (int b = nb - 1, left = k - sink_end; b >= sink_end && left > 0; b--, left--) mask[b] = 1;
  return mask;
}

int depth_floor(const Params& p, int layer, int n_layers, int context) {
  if (!p.depth_schedule) return 0;
  const int start = p.depth_start_layer >= 0 ? p.depth_start_layer : n_layers / 2;
  if (layer < start || n_layers <= start) return 0;
  const double exponent = p.depth_alpha * (layer - start) / (n_layers - start);
  return static_cast<int>(std::floor((1.0 - std::pow(p.depth_phi, exponent)) * context));
}

std::vector<double> block_scores(const std::vector<double>& log_mass, int groups, int n_blocks, const std::vector<char>& candidate) {
  std::vector<double> score(n_blocks, 0.0);
  for (int g = 0; g < groups; g++) {
    const double* lm = log_mass.data() + static_cast<long>(g) * n_blocks;
    double lse = kNegInf;
    for (int b = 0; b < n_blocks; b++) if (candidate[b]) lse = log_add(lse, lm[b]);
    if (lse == kNegInf) continue;
    for (int b = 0; b < n_blocks; b++) if (candidate[b]) score[b] += std::exp(lm[b] - lse);
  }
  return score;
}

namespace {

// The ranking's order, best first: by score, equal scores by the more recent block.
bool ranks_before(double score_a, int a, double score_b, int b) { return score_a > score_b || (score_a == score_b && a > b); }
struct Better {
  const double* score;
  bool operator()(int a, int b) const { return ranks_before(score[a], a, score[b], b); }
};

// Moves the best `keep` of `ranked` (keep < size) to its front, in no order, as nth_element with
// Better would, but in about one pass where the blocks are many and the kept few: a threshold t
// from a sample of the scores, then nth_element over the blocks scoring above t alone. Every block
// at or below t comes after every one above it, so where at least `keep` lie above, the best `keep`
// are among them. False (nothing moved) where the sample does not give such a t, or a score is NaN
// (Better is then no strict order, and the caller's nth_element decides as it always did).
bool best_by_threshold(const double* score, std::vector<int>& ranked, size_t keep) {
  constexpr size_t kSample = 128;
  const size_t n = ranked.size();
  if (n < 4 * kSample || keep * 8 > n) return false;
  std::vector<double> sample(kSample);
  for (size_t i = 0; i < kSample; i++) sample[i] = score[ranked[i * n / kSample]];
  // The expected count above the sample's j-th largest is about j·n/kSample: aim at 1.5·keep, plus some.
  const size_t j = std::min(kSample - 1, (3 * keep * kSample) / (2 * n) + 8);
  std::nth_element(sample.begin(), sample.begin() + j, sample.end(), std::greater<double>());
  const double t = sample[j];
  thread_local std::vector<int> above;
  above.resize(n);
  size_t count = 0;
  bool nan = t != t;
  for (size_t i = 0; i < n; i++) {  // branch-free: most blocks fall below t
    const double s = score[ranked[i]];
    above[count] = ranked[i];
    count += s > t;
    nan |= s != s;
  }
  if (nan || count < keep) return false;
  std::nth_element(above.begin(), above.begin() + keep, above.begin() + count, Better{score});
  std::copy(above.begin(), above.begin() + keep, ranked.begin());
  return true;
}

}  // namespace

std::vector<int> rank_by_score(const std::vector<double>& score, const std::vector<char>& candidate, int limit) {
  std::vector<int> ranked;
  ranked.reserve(candidate.size());
  for (size_t b = 0; b < candidate.size(); b++) if (candidate[b]) ranked.push_back(static_cast<int>(b));
  const size_t keep = limit < 0 ? ranked.size() : std::min(ranked.size(), static_cast<size_t>(limit));
  // Ties (equal scores) go to the more recent block: no two blocks compare equal, so the prefix is
  // the one a full stable sort gives. The best `keep` first (linear time), then their order.
  const Better better{score.data()};
  if (keep < ranked.size() && !best_by_threshold(score.data(), ranked, keep)) {
    std::nth_element(ranked.begin(), ranked.begin() + keep, ranked.end(), better);
  }
  ranked.resize(keep);
  // Sorted as (score, block) pairs, with Better's comparisons: the same order, without its loads.
  std::vector<std::pair<double, int>> order(keep);
  for (size_t i = 0; i < keep; i++) order[i] = {score[ranked[i]], ranked[i]};
  std::sort(order.begin(), order.end(), [](const std::pair<double, int>& a, const std::pair<double, int>& b) {
    return ranks_before(a.first, a.second, b.first, b.second);
  });
  for (size_t i = 0; i < keep; i++) ranked[i] = order[i].second;
  return ranked;
}

double relative_gap(double a, double b) {
  if (a == 0 && b == 0) return std::numeric_limits<double>::infinity();
  return std::fabs(a - b) / std::max({std::fabs(a), std::fabs(b), 1e-300});
}

double ranking_margin(const std::vector<double>& score, const std::vector<char>& candidate, const std::vector<int>& ranked) {
  double margin = std::numeric_limits<double>::infinity();
  for (size_t i = 1; i < ranked.size(); i++) margin = std::min(margin, relative_gap(score[ranked[i - 1]], score[ranked[i]]));
  if (ranked.empty()) return margin;
  std::vector<char> in(candidate.size(), 0);
  for (int b : ranked) in[b] = 1;
  // A candidate left out scores s <= last. Where 0 <= s, relative_gap(last, s) is (last - s) / last,
  // which falls as s grows (rounding is monotone): the largest such s gives the least gap. Others
  // (negative or NaN scores) are taken one by one.
  const double last = score[ranked.back()];
  double closest = -1;
  for (size_t b = 0; b < candidate.size(); b++) {
    if (!candidate[b] || in[b]) continue;
    const double s = score[b];
    if (s >= 0 && s <= last) closest = std::max(closest, s);
    else margin = std::min(margin, relative_gap(last, s));
  }
  if (closest >= 0) margin = std::min(margin, relative_gap(last, closest));
  return margin;
}

std::vector<int> rank_blocks(const std::vector<double>& log_mass, int groups, int n_blocks, const std::vector<char>& candidate, int limit) {
  return rank_by_score(block_scores(log_mass, groups, n_blocks, candidate), candidate, limit);
}

std::vector<int> top_k(const std::vector<int>& ranked, int count) {
  return std::vector<int>(ranked.begin(), ranked.begin() + std::clamp(count, 0, static_cast<int>(ranked.size())));
}

std::vector<int> cis_core(const std::vector<int>& ranked, const std::vector<char>& candidate, int count, int m, int r) {
  std::vector<int> core;
  if (count <= 0) return core;
  std::vector<char> taken(candidate.size(), 0);
  auto take = [&](int b) {
    if (b < 0 || b >= static_cast<int>(candidate.size()) || !candidate[b] || taken[b] || static_cast<int>(core.size()) >= count) return;
    taken[b] = 1;
    core.push_back(b);
  };
  for (int i = 0; i < std::min(m, static_cast<int>(ranked.size())); i++) {
    take(ranked[i]);
    for (int o = 1; o <= r; o++) { take(ranked[i] - o); take(ranked[i] + o); }
  }
  for (int b : ranked) take(b);
  return core;
}

}  // namespace rl::prhs
