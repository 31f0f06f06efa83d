// Rotary position embedding, HF rotate_half convention: for i < head_dim/2 the pair
// (x[i], x[i + head_dim/2]) is rotated by angle = position * inv_freq[i].
#pragma once

namespace rl {

// x [n][heads][head_dim], token t at position pos0 + t; inv_freq [head_dim/2].
void cpu_rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq);

}  // namespace rl
