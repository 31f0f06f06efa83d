// The block sets every selector builds from: the budget in blocks, the always-kept sinks and
// recency window, the depth schedule's reach, the ranking of scored blocks (a KV head serves
// all its query heads, so their per-head mass shares are summed), top-k and the CIS core.
#pragma once
#include <vector>

#include "prhs/params.h"

namespace rl::prhs {

// Blocks one KV head may read per step: ceil(budget tokens / block size), at least 1, at most all.
int budget_blocks(const Params& p, int context, int block_size);

// Sinks (blocks holding the first p.sinks positions) and the recency window (blocks holding the
// last p.window positions). mask[b] = 1 for kept blocks.
std::vector<char> sink_window_mask(const Params& p, int context, int block_size);

// StreamingLLM with the same budget: the sink blocks, then the most recent blocks up to k in all.
std::vector<char> streaming_mask(const Params& p, int context, int block_size, int k);

// Depth schedule P_l(t): positions before this are no candidates at layer `layer` (0: all are).
int depth_floor(const Params& p, int layer, int n_layers, int context);

// Each candidate block's score Σ_g exp(log_mass[g][b] - lse_g), lse_g the log-sum-exp of query
// head g over the candidates (its estimated share of the block, summed over the group); 0 for
// other blocks. log_mass is [groups][n_blocks].
std::vector<double> block_scores(const std::vector<double>& log_mass, int groups, int n_blocks, const std::vector<char>& candidate);

// The first `limit` candidate blocks by score, best first; equal scores: the more recent block
// first (a strict total order, so every prefix of the ranking is unique).
std::vector<int> rank_by_score(const std::vector<double>& score, const std::vector<char>& candidate, int limit);

// |a - b| relative to the larger magnitude: how close a comparison of a and b came to going the
// other way. Two zeros are no close call (rounding keeps them zero): infinity.
double relative_gap(double a, double b);

// How close the ranking came to another order or another prefix: the least relative gap between
// the scores of consecutive ranked blocks, and between the last one and the best candidate left out.
double ranking_margin(const std::vector<double>& score, const std::vector<char>& candidate, const std::vector<int>& ranked);

// rank_by_score(block_scores(...), candidate, limit): the best `limit` candidates (all by default).
std::vector<int> rank_blocks(const std::vector<double>& log_mass, int groups, int n_blocks, const std::vector<char>& candidate,
                             int limit = -1);

// The first `count` ranked blocks.
std::vector<int> top_k(const std::vector<int>& ranked, int count);

// CIS: each of the top-m ranked blocks with its ±r neighbours (candidates only), then the rest of
// the ranking, until `count` blocks. Reads at most the first max(m, count) ranked blocks (once
// those are walked, every one of them is taken), so a ranking cut there gives the same core.
std::vector<int> cis_core(const std::vector<int>& ranked, const std::vector<char>& candidate, int count, int m, int r);

}  // namespace rl::prhs
