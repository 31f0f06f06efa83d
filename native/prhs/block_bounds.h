// Per-block log-mass of one query head's scores: exact (reads the keys) and certified upper
// bounds from the block's key summary (min/max) or from a low-bit key copy (key_sketch.h).
// q is already scaled by 1/sqrt(head_dim); scores are q·k computed in double.
#pragma once

namespace rl::prhs {

double dot(const double* q, const float* k, int d);

// Covers double rounding in a bound against the exact score: a relative 1e-9 of Σ|q_d|·|k|max.
double bound_slack(const double* q, const float* kmin, const float* kmax, int d);

// log Σ_j exp(q·k_j) over the block's `fill` keys [fill][d].
double exact_log_mass(const double* q, const float* keys, int fill, int d);

// Upper bound of exact_log_mass: every q·k_j ≤ Σ_d max(q_d·min_d, q_d·max_d), so the block's
// mass is at most fill · exp(that).
double minmax_log_bound(const double* q, const float* kmin, const float* kmax, int fill, int d);

}  // namespace rl::prhs
