// One query head's attention over a growing set of blocks, with an online softmax in double:
// blocks can be added in any order (expansion adds them after the first pass) and the result is
// the softmax over exactly the blocks added. lse() is the log-sum-exp of the scores seen, the
// "selected mass" the certificate compares the unselected bounds against.
#pragma once
#include <vector>

#include "prhs/log_math.h"

namespace rl::prhs {

class HeadAccumulator {
 public:
  explicit HeadAccumulator(int head_dim) : acc_(head_dim, 0.0) {}
  // q [head_dim] scaled; k, v [fill][head_dim].
  void add_block(const double* q, const float* k, const float* v, int fill);
  double lse() const { return max_ == kNegInf ? kNegInf : max_ + std::log(sum_); }
  void write(float* out) const;  // [head_dim]

 private:
  double max_ = kNegInf;
  double sum_ = 0;              // Σ exp(s - max_)
  std::vector<double> acc_;     // [head_dim] Σ exp(s - max_)·v
};

}  // namespace rl::prhs
