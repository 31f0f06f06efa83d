#include "swiglu.cuh"

#include <stdexcept>
#include <string>

#include "device_util.cuh"
#include "split16.cuh"

namespace rl::cuda {
namespace {

// silu(g) * u, as the CPU backend computes it.
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.f + expf(-g)) * u; }

__global__ void swiglu_kernel(const float* __restrict__ gate, const float* __restrict__ up, const size_t count,
                              float* __restrict__ out) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
    out[i] = silu_times(gate[i], up[i]);
  }
}

// The same, eight values a thread, from gate and up in In (float32, or T as 16-bit products leave
// them), rounded to T into out16 (as gemm_cublaslt rounds x) only.
template <typename In, typename T>
__global__ void swiglu_rounded_kernel(const In* __restrict__ gate, const In* __restrict__ up, const size_t count8,
                                      uint4* __restrict__ out16) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count8; i += size_t(gridDim.x) * blockDim.x) {
    float g[8], u[8];
    load8(gate + 8 * i, g);
    load8(up + 8 * i, u);
    uint32_t h[4];
    float2 unused;
#pragma unroll
    for (int j = 0; j < 4; ++j) h[j] = Round16<T>::pack(silu_times(g[2 * j], u[2 * j]), silu_times(g[2 * j + 1], u[2 * j + 1]), unused);
    out16[i] = make_uint4(h[0], h[1], h[2], h[3]);
  }
}

template <typename T>
__global__ void widen16_kernel(const T* __restrict__ in16, const size_t count8, float4* __restrict__ out) {
  grid_dependency_wait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count8; i += size_t(gridDim.x) * blockDim.x) {
    float v[8];
    load8(in16 + 8 * i, v);
    out[2 * i] = make_float4(v[0], v[1], v[2], v[3]);
    out[2 * i + 1] = make_float4(v[4], v[5], v[6], v[7]);
  }
}

// launch(T{}) for `type`'s 16-bit T, after the checks the kernels here that take eight values a thread need.
template <class Launch>
void with_16bit_type(const char* name, size_t count, WeightType type, Launch&& launch) {
  if (count % 8 != 0) throw std::runtime_error(std::string(name) + ": count must be a multiple of 8");
  if (type == WeightType::BF16) launch(__nv_bfloat16{});
  else if (type == WeightType::F16) launch(__half{});
  else throw std::runtime_error(std::string(name) + ": 16-bit types only");
}

}  // namespace

void swiglu16_rounded(const void* gate16, const void* up16, size_t count, void* out16, WeightType type, cudaStream_t stream) {
  if (count == 0) return;
  with_16bit_type("swiglu16_rounded", count, type, [&](auto t) {
    using T = decltype(t);
    launch_chained("swiglu16_rounded_kernel", swiglu_rounded_kernel<T, T>, dim3(elementwise_blocks(count / 8)), dim3(256), 0, stream,
                   static_cast<const T*>(gate16), static_cast<const T*>(up16), count / 8, static_cast<uint4*>(out16));
  });
}

void widen16(const void* in16, size_t count, float* out, WeightType type, cudaStream_t stream) {
  if (count == 0) return;
  with_16bit_type("widen16", count, type, [&](auto t) {
    using T = decltype(t);
    launch_chained("widen16_kernel", widen16_kernel<T>, dim3(elementwise_blocks(count / 8)), dim3(256), 0, stream,
                   static_cast<const T*>(in16), count / 8, reinterpret_cast<float4*>(out));
  });
}

void swiglu_rounded(const float* gate, const float* up, size_t count, void* out16, WeightType type, cudaStream_t stream) {
  if (count == 0) return;
  with_16bit_type("swiglu_rounded", count, type, [&](auto t) {
    using T = decltype(t);
    launch_chained("swiglu_rounded_kernel", swiglu_rounded_kernel<float, T>, dim3(elementwise_blocks(count / 8)), dim3(256), 0, stream, gate, up,
                   count / 8, static_cast<uint4*>(out16));
  });
}

void swiglu(const float* gate, const float* up, size_t count, float* out, cudaStream_t stream) {
  if (count == 0) return;
  launch_chained("swiglu_kernel", swiglu_kernel, dim3(elementwise_blocks(count)), dim3(256), 0, stream, gate, up, count, out);
}

}  // namespace rl::cuda
