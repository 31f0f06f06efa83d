// Float32 values in a 16-bit type (__half, __nv_bfloat16) for the tensor cores: rounded once, or
// split as hi + lo = x - hi (hi + lo carries 16 bits of x in BF16, 22 in F16). Shared by the
// prefill GEMM's own kernel (gemm.cu) and its cuBLASLt path (gemm_cublaslt.cu), so both round alike.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace rl::cuda {

// A float pair rounded to nearest in T, packed in 32 bits; `rounded` is the pair read back.
template <typename T>
struct Round16;
template <>
struct Round16<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float a, float b, float2& rounded) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    rounded = __bfloat1622float2(h);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};
template <>
struct Round16<__half> {
  static __device__ __forceinline__ uint32_t pack(float a, float b, float2& rounded) {
    const __half2 h = __floats2half2_rn(a, b);
    rounded = __half22float2(h);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};

// Two float32 at p (8-byte aligned) -> hi and lo = x - hi, each a pair in T.
template <typename T>
__device__ __forceinline__ void split2(const float* p, uint32_t& hi, uint32_t& lo) {
  const float2 v = *reinterpret_cast<const float2*>(p);
  float2 r, unused;
  hi = Round16<T>::pack(v.x, v.y, r);
  lo = Round16<T>::pack(v.x - r.x, v.y - r.y, unused);
}

}  // namespace rl::cuda
