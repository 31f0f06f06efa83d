// The prefill GEMM (gemm.cuh's y[n][rows] = x[n][cols] . W^T + bias) through cuBLASLt
// (cublaslt.cuh): x in W's 16-bit type in a workspace, then cuBLASLt's products with fp32
// accumulation. PrefillPrecision::Half rounds x once (one product); Float32 splits it as hi + lo
// exactly as gemm.cu's kernel does (split16.cuh) and adds the second product into y (beta = 1).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "prefill_precision.cuh"
#include "weight_types.cuh"

namespace rl::cuda {

// Device bytes gemm_cublaslt needs for n tokens of cols values: cuBLASLt's workspace, then x in
// 16 bits (twice for Float32).
size_t gemm_cublaslt_workspace_bytes(int n, int cols, PrefillPrecision precision);

// gemm()'s shapes and alignment (checked by gemm); `workspace` 256-byte aligned, of at least
// gemm_cublaslt_workspace_bytes. False when cuBLASLt did not compute y (not loaded, no algorithm
// for the shape, or a failed call: cublaslt.cuh); everything else runs on `stream`.
bool gemm_cublaslt(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
                   PrefillPrecision precision, void* workspace, cudaStream_t stream);

}  // namespace rl::cuda
