// The prefill GEMM (gemm.cuh's y[n][rows] = x[n][cols] . W^T + bias) through cuBLASLt
// (cublaslt.cuh) for PrefillPrecision::Half: x rounded once to W's 16-bit type into a workspace
// (split16.cuh's rounding, as gemm.cu's kernel rounds it), then one cuBLASLt product with fp32
// accumulation. Not for Float32: its hi + lo split through cuBLASLt measured 1.06e-5 from float64
// at 8960 columns on the H100 (session 10), over Float32's 1e-5 bound; our kernel keeps it.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "gemm.cuh"
#include "weight_types.cuh"

namespace rl::cuda {

// Device bytes gemm_cublaslt needs for n tokens of cols values: cuBLASLt's workspace, then x in 16 bits.
size_t gemm_cublaslt_workspace_bytes(int n, int cols);

// The products of one x (gemm_products; gemm()'s shapes and alignment, checked by gemm), x rounded
// once (x null: rounded there already by a kernel before, rmsnorm_rounded); `workspace` 256-byte
// aligned, of at least gemm_cublaslt_workspace_bytes. False when cuBLASLt
// did not compute every y (not loaded, no algorithm for a shape, or a failed call: cublaslt.cuh);
// everything else runs on `stream`. y16: each y holds [n][rows] in W's 16-bit type instead (rounded
// once, as transformers' 16-bit products), no bias.
bool gemm_cublaslt(const float* x, int n, WeightType type, int cols, const GemmProduct* products, int count, void* workspace,
                   cudaStream_t stream, bool y16 = false);
// Where in `workspace` gemm_cublaslt keeps x rounded ([n][cols] in W's type, 256-byte aligned).
void* gemm_cublaslt_x16(void* workspace);
// y = residual + x . W^T, the residual added in cuBLASLt's epilogue (it may be y); x null: rounded
// there already by a kernel before (swiglu_rounded). False as gemm_cublaslt.
bool gemm_cublaslt_add(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* residual, float* y,
                       void* workspace, cudaStream_t stream);

}  // namespace rl::cuda
