// Hopper's bulk copies into shared memory (cp.async.bulk, one thread moves a whole contiguous piece)
// and the shared-memory barriers (mbarrier) that say when a piece has landed and when its readers are
// done with it: a producer warp can then feed consumer warps that never wait for one another. Used
// with wgmma (wgmma.cuh), so compiled where it is (sm_90a) and trapping elsewhere.
#pragma once
#include <cstdint>

#include "wgmma.cuh"

namespace rl::cuda {

// A barrier that completes a phase once `count` arrivals (and the bytes they announced) are in.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, unsigned count) {
#ifdef RL_WGMMA
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)), "r"(count) : "memory");
#else
  __trap();
#endif
}
// Makes the initialised barriers visible to the bulk copies (then a __syncthreads for the CTA's threads).
__device__ __forceinline__ void mbarrier_init_fence() {
#ifdef RL_WGMMA
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#ifdef RL_WGMMA
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_address(bar)) : "memory");
#endif
}
// Waits until the phase of parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, unsigned parity) {
#ifdef RL_WGMMA
  asm volatile(
      "{\n.reg .pred done;\nwait:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait;\n}\n" ::"r"(smem_address(bar)),
      "r"(parity)
      : "memory");
#endif
}

// The stage ring of a producer and `consumers` consumer threads: full[i] completes when stage i's copies
// have landed (the producer's one arrival, with their bytes), empty[i] when every consumer is done with
// it. One thread initialises it; a __syncthreads must follow.
__device__ __forceinline__ void stage_ring_init(uint64_t* full, uint64_t* empty, int stages, unsigned consumers) {
  for (int i = 0; i < stages; ++i) mbarrier_init(&full[i], 1), mbarrier_init(&empty[i], consumers);
  mbarrier_init_fence();
}

// Whether warp `warp` is past the first `consumer_warps`, i.e. the producer's. The index goes through a
// shuffle: uniform to the compiler, which then need not serialize the wgmmas after the branch.
__device__ __forceinline__ bool producer_warp(int warp, int consumer_warps) {
  return __shfl_sync(0xffffffffu, warp, 0) >= consumer_warps;
}

// One arrival on the barrier, which then also waits for `bytes` more to land.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, unsigned bytes) {
#ifdef RL_WGMMA
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_address(bar)), "r"(bytes) : "memory");
#else
  __trap();
#endif
}

// Copies `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared memory; the
// barrier counts one arrival now and the bytes as they land.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
  mbarrier_arrive_expect_tx(bar, bytes);
#ifdef RL_WGMMA
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(smem_address(dst)),
               "l"(src), "r"(bytes), "r"(smem_address(bar))
               : "memory");
#endif
}

// The box at (inner, outer) of a 2D tensor map (a CUtensorMap kernel parameter) into shared memory
// (TMA), its bytes counted on the barrier (announced by mbarrier_arrive_expect_tx).
__device__ __forceinline__ void tensor_copy_to_shared(void* dst, const void* map, int inner, int outer, uint64_t* bar) {
#ifdef RL_WGMMA
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
                   smem_address(dst)),
               "l"(map), "r"(inner), "r"(outer), "r"(smem_address(bar))
               : "memory");
#else
  __trap();
#endif
}

}  // namespace rl::cuda
