// A low-bit copy of one block's keys for one KV head, for tight certified bounds. Dimension d of
// key j is coded as c_jd in [0, 2^bits - 1] on the grid min_d + step_d·c with
// step_d = (max_d - min_d) / (2^bits - 1) (min/max: the block's key summary). err_d, the largest
// |k_jd - grid value| over the block, is measured at build time and rounded up, so
// q·k_j ≤ Σ_d q_d·(min_d + step_d·c_jd) + Σ_d |q_d|·err_d holds exactly: the bound stays sound.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rl::prhs {

// Bytes a reader of a block's sketch touches: packed codes plus err (min/max counted separately).
inline size_t sketch_bytes(int fill, int head_dim, int bits) {
  return (static_cast<size_t>(fill) * head_dim * bits + 7) / 8 + static_cast<size_t>(head_dim) * sizeof(float);
}

struct KeySketch {
  int fill = 0;
  int head_dim = 0;
  int bits = 8;
  std::vector<uint8_t> codes;  // [fill][head_dim], one code per byte in memory
  std::vector<float> err;      // [head_dim]
  size_t bytes() const { return sketch_bytes(fill, head_dim, bits); }
};

KeySketch build_sketch(const float* keys, const float* kmin, const float* kmax, int fill, int head_dim, int bits);

// Upper bound of log Σ_j exp(q·k_j) over the sketched block (q scaled, [head_dim]).
double sketch_log_bound(const double* q, const KeySketch& s, const float* kmin, const float* kmax);

}  // namespace rl::prhs
