// Prefill matrix products on the tensor cores: y[n][rows] = x[n][cols] . W^T (+ bias[rows]) for
// many tokens, with float32 activations and W in its 16-bit stored type (F16, BF16), read once per
// tile of 64 tokens. mma.sync m16n8k16 with float32 accumulation; x is split as hi + lo in W's type
// (two products per tile) so the result keeps about float32 accuracy: W is exact in its type, and
// hi + lo carries 16 (BF16) or 22 (F16) bits of each activation. F16 also bounds |x| by its range
// (65504), as the F16 decode attention kernels do for q. PrefillPrecision::Half rounds x once to W's
// type instead (one product, as transformers' 16-bit prefill). GemmLibrary::Auto lets cuBLASLt
// compute the Half product when the library is present (gemm_cublaslt.cuh), the same operands in
// the same types; Float32 always takes our kernels: on Hopper the wgmma one (gemm_wgmma.cuh), given
// its workspace, else this file's mma.sync one.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "prefill_precision.cuh"
#include "weight_types.cuh"

namespace rl::cuda {

// Shapes the GEMM takes: 16-bit weights, rows and cols multiples of 8 (16-byte rows of W, 8-byte
// stores of y). Others go through matvec / matvec_any.
bool gemm_supports(WeightType type, int rows, int cols);

// Who computes a Half product: our kernel (always there), cuBLASLt (an error when it cannot, and
// for Float32), or cuBLASLt when it can and our kernel otherwise.
enum class GemmLibrary { Own = 0, CublasLt = 1, Auto = 2 };

// Device bytes of the `workspace` gemm needs with `library` (cuBLASLt's, or gemm_wgmma's planes of x).
size_t gemm_workspace_bytes(GemmLibrary library, int n, int cols, PrefillPrecision precision);

// x 16-byte aligned, W 16-byte aligned, y 8-byte aligned; bias (float32) may be null; workspace
// 256-byte aligned, of gemm_workspace_bytes (may be null for Own: then the mma.sync kernel runs).
void gemm(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
          PrefillPrecision precision, GemmLibrary library, void* workspace, cudaStream_t stream);

// One product y[n][rows] = x . W^T (+ bias) of gemm_products.
struct GemmProduct {
  const void* w;
  int rows;
  const float* bias;
  float* y;
};
// gemm() of each product of one x (every W of `type` and `cols` columns): the same results, with x
// rounded once where cuBLASLt computes them (q, k and v; gate and up).
void gemm_products(const float* x, int n, WeightType type, int cols, const GemmProduct* products, int count,
                   PrefillPrecision precision, GemmLibrary library, void* workspace, cudaStream_t stream);

}  // namespace rl::cuda
