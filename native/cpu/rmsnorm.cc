#include "cpu/rmsnorm.h"

#include <cmath>

#include "cpu/convert.h"

namespace rl {

void cpu_rmsnorm(const float* x, const Weight& weight, int n, float eps, float* out) {
  const int dim = weight.cols;
  for (int t = 0; t < n; t++) {
    const float* xt = x + static_cast<size_t>(t) * dim;
    float* ot = out + static_cast<size_t>(t) * dim;
    double sum_sq = 0.0;
    for (int i = 0; i < dim; i++) sum_sq += static_cast<double>(xt[i]) * xt[i];
    const float inv_rms = 1.0f / std::sqrt(static_cast<float>(sum_sq / dim) + eps);
    for (int i = 0; i < dim; i++) ot[i] = load_f32(weight.dtype, weight.data, i) * (xt[i] * inv_rms);
  }
}

}  // namespace rl
