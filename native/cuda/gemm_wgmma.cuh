// The prefill GEMM (gemm.cuh's y[n][rows] = x[n][cols] . W^T + bias) on Hopper's warpgroup MMA
// (wgmma.cuh), for both prefill precisions: the same operands as gemm.cu's kernel (x split hi + lo in
// W's type for Float32, rounded once for Half; here once per product into the workspace), both
// copied by TMA into shared memory as wgmma reads them (a producer warpgroup, two consumer ones),
// and Float32's products summed from zero over each 64-column slice, then added in float32 (the
// tensor cores truncate what they add into an accumulator: gemm.cuh).
#pragma once
#include <cuda_runtime.h>

#include "prefill_precision.cuh"
#include "weight_types.cuh"

namespace rl::cuda {

// Device bytes of workspace gemm_wgmma needs: x's 16-bit planes (hi, and lo for Float32); 0 where
// it would not run (no wgmma, or REPO_LENS_CUDA_WGMMA=0).
size_t gemm_wgmma_workspace_bytes(int n, int cols, PrefillPrecision precision);

// gemm()'s shapes and alignment (checked by gemm), `workspace` 16-byte aligned of
// gemm_wgmma_workspace_bytes. False, with nothing launched, where it would not run (also without the
// driver's tensor-map encoder) or without a workspace; then gemm.cu's kernel runs.
bool gemm_wgmma(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
                PrefillPrecision precision, void* workspace, cudaStream_t stream);

}  // namespace rl::cuda
