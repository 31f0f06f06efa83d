// Log-domain helpers shared by the bounds, the attention accumulator and the certificate.
#pragma once
#include <cmath>
#include <limits>

namespace rl::prhs {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// log(exp(a) + exp(b)), exact for -inf operands.
inline double log_add(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  const double hi = a > b ? a : b, lo = a > b ? b : a;
  return hi + std::log1p(std::exp(lo - hi));
}

// The share of mass `log_out` next to `log_in`: exp(log_out) / (exp(log_in) + exp(log_out)).
// Increasing in log_out, so an upper bound on log_out gives an upper bound on the share.
inline double mass_share(double log_in, double log_out) {
  if (log_out == kNegInf) return 0.0;
  if (log_in == kNegInf) return 1.0;
  return 1.0 / (1.0 + std::exp(log_in - log_out));
}

}  // namespace rl::prhs
