// out = silu(gate) * up, the Llama MLP's gate (silu(x) = x * sigmoid(x)).
#pragma once
#include <cstddef>

namespace rl {

void cpu_swiglu(const float* gate, const float* up, size_t count, float* out);

}  // namespace rl
