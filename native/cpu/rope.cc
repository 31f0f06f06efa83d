#include "cpu/rope.h"

#include <cmath>

namespace rl {

void cpu_rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq) {
  const int half = head_dim / 2;
  for (int t = 0; t < n; t++) {
    // transformers multiplies position by inv_freq in float32, then takes cos/sin of that float.
    const float pos = static_cast<float>(pos0 + t);
    for (int i = 0; i < half; i++) {
      const float angle = pos * inv_freq[i];
      const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
      const float s = static_cast<float>(std::sin(static_cast<double>(angle)));
      for (int h = 0; h < heads; h++) {
        float* v = x + (static_cast<size_t>(t) * heads + h) * head_dim;
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace rl
