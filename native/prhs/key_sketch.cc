#include "prhs/key_sketch.h"

#include <algorithm>
#include <cmath>

#include "prhs/block_bounds.h"
#include "prhs/log_math.h"

namespace rl::prhs {
namespace {

double grid_step(float lo, float hi, int levels) { return (static_cast<double>(hi) - lo) / (levels - 1); }

}  // namespace

KeySketch build_sketch(const float* keys, const float* kmin, const float* kmax, int fill, int head_dim, int bits) {
  KeySketch s;
  s.fill = fill;
  s.head_dim = head_dim;
  s.bits = bits;
  s.codes.resize(static_cast<size_t>(fill) * head_dim);
  s.err.assign(head_dim, 0.0f);
  const int levels = 1 << bits;
  std::vector<double> err(head_dim, 0.0);
  for (int j = 0; j < fill; j++) {
    for (int d = 0; d < head_dim; d++) {
      const double lo = kmin[d], step = grid_step(kmin[d], kmax[d], levels);
      const double k = keys[static_cast<long>(j) * head_dim + d];
      const int c = step > 0 ? std::clamp(static_cast<int>(std::lround((k - lo) / step)), 0, levels - 1) : 0;
      s.codes[static_cast<size_t>(j) * head_dim + d] = static_cast<uint8_t>(c);
      err[d] = std::max(err[d], std::fabs(k - (lo + step * c)));
    }
  }
  // Stored as float, rounded up so the stored error still covers the measured one.
  for (int d = 0; d < head_dim; d++) {
    float e = static_cast<float>(err[d]);
    if (e < err[d]) e = std::nextafter(e, 1e30f);
    s.err[d] = e;
  }
  return s;
}

double sketch_log_bound(const double* q, const KeySketch& s, const float* kmin, const float* kmax) {
  const int d = s.head_dim, levels = 1 << s.bits;
  // ub_j = base + Σ_d w_d·c_jd with base = Σ q_d·min_d + Σ |q_d|·err_d, w_d = q_d·step_d.
  double base = bound_slack(q, kmin, kmax, d);
  std::vector<double> w(d);
  for (int i = 0; i < d; i++) {
    base += q[i] * kmin[i] + std::fabs(q[i]) * s.err[i];
    w[i] = q[i] * grid_step(kmin[i], kmax[i], levels);
  }
  double out = kNegInf;
  for (int j = 0; j < s.fill; j++) {
    const uint8_t* c = s.codes.data() + static_cast<size_t>(j) * d;
    double ub = base;
    for (int i = 0; i < d; i++) ub += w[i] * c[i];
    out = log_add(out, ub);
  }
  return out;
}

}  // namespace rl::prhs
