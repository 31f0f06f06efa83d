// Token embedding lookup: rows of the [vocab][dim] table, converted to float32.
#pragma once
#include <cstdint>

#include "backend.h"

namespace rl {

// out[n][table.cols]; tokens already checked to lie in [0, table.rows).
void cpu_embed(const Weight& table, const int32_t* tokens, int n, float* out);

}  // namespace rl
