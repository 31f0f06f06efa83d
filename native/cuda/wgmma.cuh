// Hopper's warpgroup MMA (wgmma, sm_90a only) for the Half prefill attention: fp16 A from registers
// (the m16n8k16 A fragment layout, one warp's 16 rows of the warpgroup's 64), fp16 B from shared
// memory through a matrix descriptor, fp32 accumulators in the m16n8k16 C layout (8-column tiles
// in order: d[4 j .. 4 j + 3] = rows g, g + 8 of columns 8 j + 2 q (+1)).
//
// B is stored K-major without swizzle: 8x8 core matrices of 128 contiguous bytes (8 rows of N, each
// 8 consecutive K elements), `k_stride` bytes between core matrices along K and `n_stride` along N.
//
// Compiled for other targets (or sm_90 without the a) these helpers trap; wgmma_available() says
// whether the loaded code has them, and callers take another kernel when it does not.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

namespace rl::cuda {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define RL_WGMMA 1
#endif

// The shared-memory descriptor (PTX ISA, "matrix descriptor"): start address, leading (K) and stride
// (N) byte offsets, each in 16-byte units; swizzle mode 0.
__device__ __forceinline__ uint64_t wgmma_desc(const void* smem, unsigned k_stride, unsigned n_stride) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
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

// d[64 x 64] (+)= a[64 x 16] . B[16 x 64]; accumulate = false ignores d's old values.
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[32], const unsigned (&a)[4], uint64_t b, bool accumulate) {
#ifdef RL_WGMMA
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %36, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
      "{%32,%33,%34,%35}, %37, p, 1, 1, 0;\n}\n"
      : RL_WGMMA_8(0), RL_WGMMA_8(8), RL_WGMMA_8(16), RL_WGMMA_8(24)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(int(accumulate)), "l"(b));
#else
  __trap();
#endif
}

// d[64 x 128] (+)= a[64 x 16] . B[16 x 128].
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], const unsigned (&a)[4], uint64_t b, bool accumulate) {
#ifdef RL_WGMMA
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
      "{%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}\n"
      : RL_WGMMA_8(0), RL_WGMMA_8(8), RL_WGMMA_8(16), RL_WGMMA_8(24), RL_WGMMA_8(32), RL_WGMMA_8(40),
        RL_WGMMA_8(48), RL_WGMMA_8(56)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)));
#else
  __trap();
#endif
}

#undef RL_WGMMA_8

// Gives back (Grow false) or takes (true) registers: every thread of the warpgroup ends with `Count`.
template <bool Grow, int Count>
__device__ __forceinline__ void set_max_registers() {
#ifdef RL_WGMMA
  if constexpr (Grow) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Count));
  else asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Count));
#endif
}

// d[64 x N] (+)= a . B for N = 64 or 128, d as N / 8 C fragments of 8 columns.
template <int N>
__device__ __forceinline__ void wgmma_m64k16(float (&d)[N / 8][4], const unsigned (&a)[4], uint64_t b, bool accumulate) {
  static_assert(N == 64 || N == 128, "N is 64 or 128");
  if constexpr (N == 128) wgmma_m64n128k16(reinterpret_cast<float(&)[64]>(d), a, b, accumulate);
  else wgmma_m64n64k16(reinterpret_cast<float(&)[32]>(d), a, b, accumulate);
}

// The descriptor of k-step k (K elements 16 k ..: core matrices 2 k and 2 k + 1 along K) of a K-major
// tile whose core matrices lie 128 bytes apart along K and n_stride bytes apart along N.
__device__ __forceinline__ uint64_t wgmma_step(const __half* tile, int k, unsigned n_stride) {
  return wgmma_desc(tile + 128 * k, 128, n_stride);
}

// Whether the loaded device code has the wgmma kernels (a Hopper GPU running sm_90a code); queried once.
bool wgmma_available();

}  // namespace rl::cuda
