// cuBLASLt, found and driven at run time: libcublasLt is dlopen'ed when present, never needed to
// build or install (the issue: our own kernels must always work). REPO_LENS_CUBLASLT=0 never loads
// it; REPO_LENS_CUBLASLT=/path/libcublasLt.so.N loads that file only; unset tries
// libcublasLt.so.13, .so.12, .so. Whatever fails is logged once to stderr
// ("repo-lens: cuBLASLt not used: ...") and the callers run their own kernels from then on.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "weight_types.cuh"

namespace rl::cuda {

// cublasLtGetVersion() of the loaded library (e.g. 130100 for 13.1.0), or 0 when it is absent,
// switched off or has failed; the first call loads it.
size_t cublaslt_version();

// Device workspace cuBLASLt may use for one product (its split-K partial sums and the like).
constexpr size_t kCublasLtWorkspaceBytes = size_t(32) << 20;

// y[n][rows] = x16[n][cols] . W^T (+ residual[n][rows], added in the epilogue; it may be y), fp32
// accumulation, all on `stream`: W [rows][cols] and x16 [n][cols] in `type` (F16 or BF16), y float32,
// or with y16 in `type` too (rounded once, as transformers' 16-bit products; no residual then).
// `workspace`: kCublasLtWorkspaceBytes of device memory, 256-byte aligned. False when cuBLASLt did
// not run the product (not loaded, no algorithm for this shape, or a call failed: then it is switched
// off for the process); y is then unspecified and the caller computes it another way.
bool cublaslt_matmul(WeightType type, int rows, int cols, int n, const void* w, const void* x16, void* y,
                     void* workspace, cudaStream_t stream, const float* residual = nullptr, bool y16 = false);

}  // namespace rl::cuda
