#include "prhs/block_bounds.h"

#include <algorithm>
#include <cmath>

#include "prhs/log_math.h"

namespace rl::prhs {

double dot(const double* q, const float* k, int d) {
  double s = 0;
  for (int i = 0; i < d; i++) s += q[i] * k[i];
  return s;
}

double bound_slack(const double* q, const float* kmin, const float* kmax, int d) {
  double s = 0;
  for (int i = 0; i < d; i++) s += std::fabs(q[i]) * std::max(std::fabs(kmin[i]), std::fabs(kmax[i]));
  return 1e-9 * s + 1e-12;
}

double exact_log_mass(const double* q, const float* keys, int fill, int d) {
  double out = kNegInf;
  for (int j = 0; j < fill; j++) out = log_add(out, dot(q, keys + static_cast<long>(j) * d, d));
  return out;
}

double minmax_log_bound(const double* q, const float* kmin, const float* kmax, int fill, int d) {
  double ub = 0;
  for (int i = 0; i < d; i++) ub += std::max(q[i] * kmin[i], q[i] * kmax[i]);
  return std::log(static_cast<double>(fill)) + ub + bound_slack(q, kmin, kmax, d);
}

}  // namespace rl::prhs
