#include "prhs/selection.h"

#include <algorithm>
#include <cmath>
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

std::vector<int> rank_by_score(const std::vector<double>& score, const std::vector<char>& candidate, int limit) {
  std::vector<int> ranked;
  for (size_t b = 0; b < candidate.size(); b++) if (candidate[b]) ranked.push_back(static_cast<int>(b));
  const auto cut = ranked.begin() + (limit < 0 ? ranked.size() : std::min(ranked.size(), static_cast<size_t>(limit)));
  // Ties (equal scores) go to the more recent block: no two blocks compare equal, so the prefix is
  // the one a full stable sort gives. The best `limit` first (linear time), then their order.
  const auto better = [&](int a, int b) { return score[a] > score[b] || (score[a] == score[b] && a > b); };
  if (cut != ranked.end()) std::nth_element(ranked.begin(), cut, ranked.end(), better);
  ranked.erase(cut, ranked.end());
  std::sort(ranked.begin(), ranked.end(), better);
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
  for (size_t b = 0; b < candidate.size(); b++) {
    if (candidate[b] && !in[b]) margin = std::min(margin, relative_gap(score[ranked.back()], score[b]));
  }
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
