#include "rmsnorm.cuh"

#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kThreads = 256;

// One CTA per token: sum of squares (block reduction), then the scaled copy.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_kernel(const float* __restrict__ x, const T* __restrict__ weight, const int dim, const float eps,
                   float* __restrict__ out) {
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
  for (int i = threadIdx.x; i < dim; i += kThreads) out[size_t(blockIdx.x) * dim + i] = xt[i] * inv * load1(weight + i);
}

template <typename T>
void launch(const float* x, const void* w, int n, int dim, float eps, float* out, cudaStream_t s) {
  launch_chained("rmsnorm_kernel", rmsnorm_kernel<T>, dim3(n), dim3(kThreads), 0, s, x, static_cast<const T*>(w), dim,
                 eps, out);
}

}  // namespace

void rmsnorm(const float* x, const void* weight, WeightType type, int n, int dim, float eps, float* out,
             cudaStream_t stream) {
  if (n <= 0 || dim <= 0) throw std::runtime_error("rmsnorm: empty shape");
  switch (type) {
    case WeightType::F32: return launch<float>(x, weight, n, dim, eps, out, stream);
    case WeightType::F16: return launch<__half>(x, weight, n, dim, eps, out, stream);
    case WeightType::BF16: return launch<__nv_bfloat16>(x, weight, n, dim, eps, out, stream);
  }
  throw std::runtime_error("rmsnorm: unknown weight type");
}

}  // namespace rl::cuda
