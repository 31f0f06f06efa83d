#include "model/rope_freq.h"

#include <cmath>

namespace rl {

std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling) {
  const int half = head_dim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; i++) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float power = static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
    inv[i] = 1.0f / power;
  }
  if (!scaling.llama3) return inv;

  const float factor = scaling.factor, low = scaling.low_freq_factor, high = scaling.high_freq_factor;
  const float old_context = scaling.original_max_positions;
  const float low_freq_wavelen = static_cast<float>(static_cast<double>(old_context) / low);
  const float high_freq_wavelen = static_cast<float>(static_cast<double>(old_context) / high);
  for (int i = 0; i < half; i++) {
    const float wavelen = static_cast<float>(2.0 * M_PI) / inv[i];
    // Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
    const float llama = wavelen > low_freq_wavelen ? inv[i] / factor : inv[i];
    const float smooth = (old_context / wavelen - low) / (high - low);
    const float smoothed = (1.0f - smooth) * llama / factor + smooth * llama;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    inv[i] = medium ? smoothed : llama;
  }
  return inv;
}

}  // namespace rl
