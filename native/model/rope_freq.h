// RoPE inverse frequencies [head_dim/2], computed in float32 exactly as transformers does:
// default: 1 / theta^(2i/head_dim); llama3: _compute_llama3_parameters' smoothing of the above.
#pragma once
#include <vector>

#include "model/spec.h"

namespace rl {

std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling);

}  // namespace rl
