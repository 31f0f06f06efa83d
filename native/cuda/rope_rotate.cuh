// RoPE's rotation of one pair (a, b) = (x[i], x[i + head_dim/2]) at `position` for frequency f, as
// transformers (and the CPU backend) compute it: the angle is the float32 product position * f, its
// cos and sin taken in double precision. Shared by every kernel that rotates, so they agree bit for bit.
#pragma once
#include <cuda_runtime.h>

namespace rl::cuda {

__device__ __forceinline__ void rope_rotate(float& a, float& b, int position, float f) {
  const float angle = __fmul_rn(float(position), f);
  double s, c;
  sincos(double(angle), &s, &c);
  const float cf = float(c), sf = float(s);
  const float ra = __fsub_rn(__fmul_rn(a, cf), __fmul_rn(b, sf));
  const float rb = __fadd_rn(__fmul_rn(b, cf), __fmul_rn(a, sf));
  a = ra, b = rb;
}

}  // namespace rl::cuda
