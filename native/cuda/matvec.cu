#include "matvec.cuh"

#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kTokens = 4;       // tokens per pass over W
constexpr int kRowsPerCta = 8;   // one warp per row
constexpr int kUnroll = 4;       // 16-byte chunks of W in flight per lane

template <typename T>
__global__ void __launch_bounds__(kRowsPerCta * 32)
    matvec_kernel(const float* __restrict__ x, const int n, const T* __restrict__ w, const int rows, const int cols,
                  const float* __restrict__ bias, float* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kRowsPerCta + (threadIdx.x >> 5);
  grid_dependency_wait();
  if (row >= rows) return;
  const T* wr = w + size_t(row) * cols;
  const int tokens = min(n - int(blockIdx.y) * kTokens, kTokens);
  const float* xt = x + size_t(blockIdx.y) * kTokens * cols;

  float acc[kTokens] = {};
  for (int c0 = lane * 8; c0 < cols; c0 += 32 * 8 * kUnroll) {
    float wf[kUnroll][8];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + u * 32 * 8;
      if (c < cols) load8(wr + c, wf[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + u * 32 * 8;
      if (c >= cols) break;
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t < tokens) {
          float xf[8];
          load8(xt + size_t(t) * cols + c, xf);
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[t] += wf[u][j] * xf[j];
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    const float sum = warp_sum(acc[t]);
    if (lane == 0 && t < tokens) y[(size_t(blockIdx.y) * kTokens + t) * rows + row] = sum + (bias ? bias[row] : 0.f);
  }
}

template <typename T>
void launch(const float* x, int n, const void* w, int rows, int cols, const float* bias, float* y, cudaStream_t s) {
  const dim3 grid((rows + kRowsPerCta - 1) / kRowsPerCta, (n + kTokens - 1) / kTokens);
  launch_chained("matvec_kernel", matvec_kernel<T>, grid, dim3(kRowsPerCta * 32), 0, s, x, n,
                 static_cast<const T*>(w), rows, cols, bias, y);
}

}  // namespace

void matvec(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
            cudaStream_t stream) {
  if (n <= 0 || rows <= 0 || cols <= 0) throw std::runtime_error("matvec: empty shape");
  if (cols % 8 != 0) throw std::runtime_error("matvec: cols must be a multiple of 8");
  switch (type) {
    case WeightType::F32: return launch<float>(x, n, w, rows, cols, bias, y, stream);
    case WeightType::F16: return launch<__half>(x, n, w, rows, cols, bias, y, stream);
    case WeightType::BF16: return launch<__nv_bfloat16>(x, n, w, rows, cols, bias, y, stream);
  }
  throw std::runtime_error("matvec: unknown weight type");
}

}  // namespace rl::cuda
