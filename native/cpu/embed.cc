#include "cpu/embed.h"

#include "cpu/convert.h"

namespace rl {

void cpu_embed(const Weight& table, const int32_t* tokens, int n, float* out) {
  const size_t dim = table.cols;
  for (int t = 0; t < n; t++) to_f32(table.dtype, table.data, static_cast<size_t>(tokens[t]) * dim, dim, out + t * dim);
}

}  // namespace rl
