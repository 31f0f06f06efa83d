// Small device helpers shared by the CUDA ops: asynchronous 16-byte copies, fp16 unpacking,
// warp reductions, and the multiprocessor count of the current device.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_check.cuh"

namespace rl::cuda {

// A shared-memory pointer as the 32-bit address PTX's shared-memory operands take.
__device__ __forceinline__ unsigned smem_address(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

// Global -> shared, 16 bytes, bypassing L1 (sm_80+). Completes at cp_async_wait.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned dst = smem_address(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

// Eight fp16 values packed in 16 bytes -> float32.
__device__ __forceinline__ void unpack8(const uint4& raw, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

// 2^x as one MUFU.EX2, results below 2^-126 flushed to zero (exp2f guards denormals with three more
// instructions an element): such terms add nothing that a float32 sum of larger ones would keep.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// CTA-wide reduction of N values per thread over a CTA of kThreads threads (op: fmaxf or a sum);
// every thread gets the results, the same in each. scratch is [kThreads / 32][N] shared memory: a
// barrier must come before its next use.
template <int kThreads, int N, typename T, typename Op>
__device__ __forceinline__ void cta_reduce(T (&v)[N], T (*scratch)[N], Op op) {
  constexpr int kWarps = kThreads / 32;
  static_assert(kThreads % 32 == 0 && kWarps <= 32 && (kWarps & (kWarps - 1)) == 0, "a power of 2 of whole warps");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < N; ++j) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v[j] = op(v[j], __shfl_xor_sync(0xffffffffu, v[j], off));
    if (lane == 0) scratch[warp][j] = v[j];
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < N; ++j) {
    v[j] = scratch[lane % kWarps][j];
#pragma unroll
    for (int off = kWarps / 2; off > 0; off >>= 1) v[j] = op(v[j], __shfl_xor_sync(0xffffffffu, v[j], off));
  }
}

// Programmatic dependent launch (Hopper+): a kernel launched with launch_chained may start while
// the previous kernel of the stream finishes; it must call grid_dependency_wait() before touching
// global memory (the wait returns once the previous grid completed and its writes are visible).
// grid_dependency_release() lets the next chained kernel get scheduled early.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void grid_dependency_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::);
#endif
}

// A load that acquires at GPU scope: what another CTA wrote before releasing the value (a fence and
// then the write, or atomic_add_acq_rel) is visible after it.
__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Adds v to a count at GPU scope, acquiring and releasing: the writes ordered before it (a CTA's, by
// a barrier) are visible to whoever reads the count after it with acquire, and the writes others
// released before their adds are visible after it.
__device__ __forceinline__ unsigned atomic_add_acq_rel(unsigned* p, unsigned v) {
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.global.u32 %0, [%1], %2;\n" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}

inline bool programmatic_launch_supported() {
  static const bool supported = [] {
    int device = 0, major = 0;
    RL_CUDA_CHECK(cudaGetDevice(&device));
    RL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    return major >= 9;
  }();
  return supported;
}

// Launches `kernel` on `stream`, chained to the previous kernel where the GPU supports it.
template <typename... Params, typename... Args>
void launch_chained(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                    cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = programmatic_launch_supported() ? 1 : 0;
  check(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...), name, __FILE__, __LINE__);
}

// CTAs of 256 threads for a grid-stride loop over `count` elements: one element a thread, at most 4096 CTAs.
inline unsigned elementwise_blocks(size_t count) { return unsigned(count < size_t(256) * 4096 ? (count + 255) / 256 : 4096); }

inline int multiprocessor_count() {
  int device = 0, count = 0;
  RL_CUDA_CHECK(cudaGetDevice(&device));
  RL_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

}  // namespace rl::cuda
