// Fused decode matrix products for a few tokens (n < 16; prefill takes the GEMM): one launch
// computes, with W in its stored type (F32, F16, BF16) and float32 activations and accumulation,
//   store    y_p[n][rows_p] = x' . W_p^T (+ bias_p) for up to three weights W_p side by side
//            (q, k and v of a layer in one launch)
//   add      y[n][rows] += x' . W^T (+ bias)   (o_proj, down_proj: the residual add fused; or
//            y = residual + x' . W^T (+ bias) from another array)
//   swiglu   y[n][rows] = silu(x' . Wg^T) * (x' . Wu^T)   (gate and up, then SwiGLU)
// where x' = x[n][cols], or rmsnorm(x) with a float32 norm weight [cols] and eps when `norm` is
// given (each CTA recomputes the token's sum of squares as the rmsnorm kernel does, so the
// normalized values are bit-equal to rmsnorm.cuh's).
//
// One warp per (row, column segment): a row's columns are split over `split` warps of a CTA when
// the rows alone would give too few warps (down_proj: 1536 rows of 8960 columns), or, for SwiGLU,
// when a lane's share of a row would take more than one round of loads; partial sums added through
// shared memory in segment order. W is streamed past L1 (no allocation) so x stays
// in L1, and the first loads of W are issued before the wait on the previous kernel (weights do
// not depend on it; programmatic dependent launch, device_util.cuh).
#pragma once
#include <cuda_runtime.h>

#include "weight_types.cuh"

namespace rl::cuda {

enum class DecodeLinearMode { Store = 0, Add = 1, Swiglu = 2 };

struct DecodeLinearPart {
  const void* w = nullptr;     // [rows][cols] in `type`, rows 16-byte aligned
  const float* bias = nullptr;  // [rows] or null
  float* y = nullptr;           // [n][rows]
  int rows = 0;
};

struct DecodeLinearArgs {
  const float* x = nullptr;     // [n][cols]
  int n = 0, cols = 0;          // cols a multiple of 8
  const float* norm = nullptr;  // [cols] float32, or null: x is used as it is
  float eps = 0.f;
  DecodeLinearMode mode = DecodeLinearMode::Store;
  // Add: y = residual + x' . W^T (+ bias) into part 0's y instead of y += ... ([n][rows]; null: in place).
  const float* residual = nullptr;
  WeightType type = WeightType::BF16;
  // Store: 1..3 parts; Add: 1 part; Swiglu: 2 parts of the same rows (gate, up), the output in part 0's y.
  DecodeLinearPart part[3];
  int parts = 1;
  int split = 0;  // warps per row; 0: chosen from the shape
  // Lets the next kernel of the stream be scheduled as soon as this one's W loads are issued (it
  // waits for this one's results all the same: device_util.cuh), so its own weight loads overlap
  // this kernel's tail.
  bool early_launch = false;
};

// Throws for shapes it does not take (cols % 8, too many tokens, mismatched parts).
void decode_linear(const DecodeLinearArgs& a, cudaStream_t stream);

// Whether decode_linear takes n tokens (the backend falls back to the unfused ops otherwise).
constexpr int kDecodeLinearMaxTokens = 15;

// A/B timing of the tuning choices (bench/gpu/capi.cu): variant 0 = what decode_linear runs;
// 1 = W loaded through L1 (__ldg) as matvec.cu does; 2 = 8 chunks of W in flight per lane instead of 4;
// 3 = x' staged in shared memory once per CTA (1 token, cols <= 12288); plus 16: early_launch set.
void decode_linear_variant(const DecodeLinearArgs& a, int variant, cudaStream_t stream);

}  // namespace rl::cuda
