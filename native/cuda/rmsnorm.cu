#include "rmsnorm.cuh"

#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "device_util.cuh"
#include "split16.cuh"

namespace rl::cuda {
namespace {

constexpr int kThreads = 256;

// One CTA per token: sum of squares (block reduction), then the scaled copy (and, for R other than
// float, that copy rounded to R into out16).
template <typename T, typename R>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_kernel(const float* __restrict__ x, const T* __restrict__ weight, const int dim, const float eps,
                   float* __restrict__ out, R* __restrict__ out16) {
  __shared__ float warp_sums[kThreads / 32];
  grid_dependency_wait();
  const float* xt = x + size_t(blockIdx.x) * dim;
  float ss = 0.f;
  for (int i = threadIdx.x; i < dim; i += kThreads) ss += xt[i] * xt[i];
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = ss;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  const float inv = rsqrtf(total / dim + eps);
  for (int i = threadIdx.x; i < dim; i += kThreads) {
    const float y = xt[i] * inv * load1(weight + i);
    out[size_t(blockIdx.x) * dim + i] = y;
    if constexpr (!std::is_same_v<R, float>) {
      float2 unused;
      const uint32_t pair = Round16<R>::pack(y, 0.f, unused);  // as gemm_cublaslt rounds x
      reinterpret_cast<uint16_t*>(out16)[size_t(blockIdx.x) * dim + i] = uint16_t(pair & 0xFFFFu);
    }
  }
}

template <typename T, typename R>
void launch(const float* x, const void* w, int n, int dim, float eps, float* out, void* out16, cudaStream_t s) {
  launch_chained("rmsnorm_kernel", rmsnorm_kernel<T, R>, dim3(n), dim3(kThreads), 0, s, x, static_cast<const T*>(w), dim,
                 eps, out, static_cast<R*>(out16));
}

template <typename R>
void launch(const float* x, const void* weight, WeightType type, int n, int dim, float eps, float* out, void* out16,
            cudaStream_t stream) {
  switch (type) {
    case WeightType::F32: return launch<float, R>(x, weight, n, dim, eps, out, out16, stream);
    case WeightType::F16: return launch<__half, R>(x, weight, n, dim, eps, out, out16, stream);
    case WeightType::BF16: return launch<__nv_bfloat16, R>(x, weight, n, dim, eps, out, out16, stream);
  }
  throw std::runtime_error("rmsnorm: unknown weight type");
}

}  // namespace

void rmsnorm(const float* x, const void* weight, WeightType type, int n, int dim, float eps, float* out,
             cudaStream_t stream) {
  if (n <= 0 || dim <= 0) throw std::runtime_error("rmsnorm: empty shape");
  launch<float>(x, weight, type, n, dim, eps, out, nullptr, stream);
}

void rmsnorm_rounded(const float* x, const void* weight, WeightType type, int n, int dim, float eps, float* out, void* out16,
                     WeightType out16_type, cudaStream_t stream) {
  if (n <= 0 || dim <= 0) throw std::runtime_error("rmsnorm: empty shape");
  if (out16_type == WeightType::BF16) return launch<__nv_bfloat16>(x, weight, type, n, dim, eps, out, out16, stream);
  if (out16_type == WeightType::F16) return launch<__half>(x, weight, type, n, dim, eps, out, out16, stream);
  throw std::runtime_error("rmsnorm_rounded: 16-bit types only");
}

}  // namespace rl::cuda
