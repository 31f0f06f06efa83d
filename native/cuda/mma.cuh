// Tensor-core helpers shared by the kernels that keep float32 accuracy on fp16 tensor cores
// (decode_attention, prefill_attention, gemm): the m16n8k16 fp16 MMA, ldmatrix of four 8x8 tiles,
// and the hi + lo split of float pairs.
#pragma once
#include <cuda_fp16.h>

namespace rl::cuda {

// m16n8k16 fp16 MMA with fp32 accumulators; a: rows g / g + 8, columns 2 q (+1) and 2 q + 8 (+9)
// for lane = 4 g + q (PTX's A fragment order: a[0] (g, k), a[1] (g + 8, k), a[2] (g, k + 8), a[3] (g + 8, k + 8)).
__device__ __forceinline__ void mma_f16(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 tiles of 16-bit elements from shared memory (each lane gives one row address).
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Two floats as fp16 (hi) and the fp16 of what rounding left (lo): hi + lo carries ~22 bits, so
// the fp16 tensor cores keep float32-level accuracy.
__device__ __forceinline__ void split_half2(float x, float y, unsigned& hi, unsigned& lo) {
  const __half2 h = __floats2half2_rn(x, y);
  const float2 back = __half22float2(h);
  const __half2 l = __floats2half2_rn(x - back.x, y - back.y);
  hi = *reinterpret_cast<const unsigned*>(&h);
  lo = *reinterpret_cast<const unsigned*>(&l);
}

}  // namespace rl::cuda
