// Hopper's warpgroup MMA (wgmma, sm_90a only) for the prefill attention and GEMM: 16-bit A from
// registers (the m16n8k16 A fragment layout, one warp's 16 rows of the warpgroup's 64) or from shared
// memory, 16-bit B from shared memory through a matrix descriptor, fp32 accumulators in the m16n8k16
// C layout (8-column tiles in order: d[4 j .. 4 j + 3] = rows g, g + 8 of columns 8 j + 2 q (+1)).
//
// B is stored K-major without swizzle: 8x8 core matrices of 128 contiguous bytes (8 rows of N, each
// 8 consecutive K elements), `k_stride` bytes between core matrices along K and `n_stride` along N.
//
// Compiled for other targets (or sm_90 without the a) these helpers trap; wgmma_available() says
// whether the loaded code has them, and callers take another kernel when it does not.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "device_util.cuh"

namespace rl::cuda {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define RL_WGMMA 1
#endif

// The shared-memory descriptor (PTX ISA, "matrix descriptor"): start address, leading (K) and stride
// (N) byte offsets, each in 16-byte units; swizzle mode 0.
__device__ __forceinline__ uint64_t wgmma_desc(const void* smem, unsigned k_stride, unsigned n_stride) {
  const unsigned addr = smem_address(smem);
  return uint64_t((addr & 0x3FFFF) >> 4) | uint64_t((k_stride >> 4) & 0x3FFF) << 16 |
         uint64_t((n_stride >> 4) & 0x3FFF) << 32;
}

// Orders this thread's earlier register and shared-memory accesses before the next wgmma's.
__device__ __forceinline__ void wgmma_fence() {
#ifdef RL_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}
// Closes the wgmmas issued since the last commit into a group.
__device__ __forceinline__ void wgmma_commit() {
#ifdef RL_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most `Pending` of the committed groups are still running (groups finish in order).
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
#ifdef RL_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
#endif
}

#define RL_WGMMA_8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), \
                      "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define RL_WGMMA_D32 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"   \
                     "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}"
#define RL_WGMMA_D64 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"   \
                     "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31," \
                     "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47," \
                     "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}"
#define RL_WGMMA_ACC32 RL_WGMMA_8(0), RL_WGMMA_8(8), RL_WGMMA_8(16), RL_WGMMA_8(24)
#define RL_WGMMA_ACC64 RL_WGMMA_ACC32, RL_WGMMA_8(32), RL_WGMMA_8(40), RL_WGMMA_8(48), RL_WGMMA_8(56)
// A from registers: d, {a0..a3}, B's descriptor, accumulate (the operands after d, in that order).
#define RL_WGMMA_RS(SHAPE, TYPE, D, ACC, A, B, P)                                                       \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " P ", 0;\n"                                          \
               "wgmma.mma_async.sync.aligned." SHAPE ".f32." TYPE "." TYPE " " D ", " A ", " B ", p, 1, 1, 0;\n}\n" \
               : ACC                                                                                    \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)))
// Both from shared memory: d, A's descriptor, B's descriptor, accumulate.
#define RL_WGMMA_SS(SHAPE, TYPE, D, ACC, A, B, P)                                                       \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " P ", 0;\n"                                          \
               "wgmma.mma_async.sync.aligned." SHAPE ".f32." TYPE "." TYPE " " D ", " A ", " B ", p, 1, 1, 0, 0;\n}\n" \
               : ACC                                                                                    \
               : "l"(a), "l"(b), "r"(int(accumulate)))

// The shapes and types the wrappers below take; true for bf16.
template <int N, typename T>
__host__ __device__ constexpr bool wgmma_bf16() {
  static_assert(N == 64 || N == 128, "N is 64 or 128");
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "fp16 or bf16 operands");
  return std::is_same_v<T, __nv_bfloat16>;
}

// d[64 x N] (+)= a[64 x 16] . B[16 x N] in T (__half or __nv_bfloat16), N = 64 or 128, d as N / 8 C
// fragments of 8 columns; accumulate = false ignores d's old values. A from registers.
template <int N, typename T = __half>
__device__ __forceinline__ void wgmma_m64k16(float (&dn)[N / 8][4], const unsigned (&a)[4], uint64_t b, bool accumulate) {
  constexpr bool kBf16 = wgmma_bf16<N, T>();
#ifdef RL_WGMMA
  float(&d)[N / 2] = reinterpret_cast<float(&)[N / 2]>(dn);
  if constexpr (N == 64 && kBf16) RL_WGMMA_RS("m64n64k16", "bf16", RL_WGMMA_D32, RL_WGMMA_ACC32, "{%32,%33,%34,%35}", "%36", "%37");
  else if constexpr (N == 64) RL_WGMMA_RS("m64n64k16", "f16", RL_WGMMA_D32, RL_WGMMA_ACC32, "{%32,%33,%34,%35}", "%36", "%37");
  else if constexpr (kBf16) RL_WGMMA_RS("m64n128k16", "bf16", RL_WGMMA_D64, RL_WGMMA_ACC64, "{%64,%65,%66,%67}", "%68", "%69");
  else RL_WGMMA_RS("m64n128k16", "f16", RL_WGMMA_D64, RL_WGMMA_ACC64, "{%64,%65,%66,%67}", "%68", "%69");
#else
  __trap();
#endif
}

// The same with A from shared memory too, by descriptor.
template <int N, typename T>
__device__ __forceinline__ void wgmma_ss_m64k16(float (&dn)[N / 8][4], uint64_t a, uint64_t b, bool accumulate) {
  constexpr bool kBf16 = wgmma_bf16<N, T>();
#ifdef RL_WGMMA
  float(&d)[N / 2] = reinterpret_cast<float(&)[N / 2]>(dn);
  if constexpr (N == 64 && kBf16) RL_WGMMA_SS("m64n64k16", "bf16", RL_WGMMA_D32, RL_WGMMA_ACC32, "%32", "%33", "%34");
  else if constexpr (N == 64) RL_WGMMA_SS("m64n64k16", "f16", RL_WGMMA_D32, RL_WGMMA_ACC32, "%32", "%33", "%34");
  else if constexpr (kBf16) RL_WGMMA_SS("m64n128k16", "bf16", RL_WGMMA_D64, RL_WGMMA_ACC64, "%64", "%65", "%66");
  else RL_WGMMA_SS("m64n128k16", "f16", RL_WGMMA_D64, RL_WGMMA_ACC64, "%64", "%65", "%66");
#else
  __trap();
#endif
}

#undef RL_WGMMA_8
#undef RL_WGMMA_D32
#undef RL_WGMMA_D64
#undef RL_WGMMA_ACC32
#undef RL_WGMMA_ACC64
#undef RL_WGMMA_RS
#undef RL_WGMMA_SS

// The descriptor of k-step k (K elements 16 k ..: core matrices 2 k and 2 k + 1 along K) of a K-major
// tile whose core matrices lie 128 bytes apart along K and n_stride bytes apart along N.
__device__ __forceinline__ uint64_t wgmma_step(const void* tile, int k, unsigned n_stride) {
  return wgmma_desc(static_cast<const char*>(tile) + 256 * k, 128, n_stride);
}

// The descriptor of k-step k of a K-major tile of 64-element (128-byte) rows in the 128-byte swizzle
// that TMA writes (bulk_copy.cuh): 1024 bytes between groups of 8 rows, the k-step 32 bytes into
// the row; the tile 1024-byte aligned.
__device__ __forceinline__ uint64_t wgmma_step_sw128(const void* tile, int k) {
  const unsigned addr = smem_address(tile) + 32 * k;
  return uint64_t((addr & 0x3FFFF) >> 4) | uint64_t(1) << 16 | uint64_t(1024 >> 4) << 32 | uint64_t(1) << 62;
}

// Gives back (Grow false) or takes (true) registers: every thread of the warpgroup ends with `Count`.
template <bool Grow, int Count>
__device__ __forceinline__ void set_max_registers() {
#ifdef RL_WGMMA
  if constexpr (Grow) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Count));
  else asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Count));
#endif
}

// Whether the loaded device code has the wgmma kernels (a Hopper GPU running sm_90a code); queried once.
bool wgmma_available();

}  // namespace rl::cuda
