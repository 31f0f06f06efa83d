#include "prhs/head_accumulator.h"

#include <algorithm>
#include <cmath>

#include "prhs/block_bounds.h"

namespace rl::prhs {

void HeadAccumulator::add_block(const double* q, const float* k, const float* v, int fill) {
  const int d = static_cast<int>(acc_.size());
  for (int j = 0; j < fill; j++) {
    const double s = dot(q, k + static_cast<long>(j) * d, d);
    if (s > max_) {
      const double rescale = max_ == kNegInf ? 0.0 : std::exp(max_ - s);
      sum_ *= rescale;
      for (double& a : acc_) a *= rescale;
      max_ = s;
    }
    const double p = std::exp(s - max_);
    sum_ += p;
    const float* vj = v + static_cast<long>(j) * d;
    for (int i = 0; i < d; i++) acc_[i] += p * vj[i];
  }
}

void HeadAccumulator::write(float* out) const {
  const int d = static_cast<int>(acc_.size());
  for (int i = 0; i < d; i++) out[i] = sum_ > 0 ? static_cast<float>(acc_[i] / sum_) : 0.0f;
}

}  // namespace rl::prhs
