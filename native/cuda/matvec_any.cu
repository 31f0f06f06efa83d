#include "matvec_any.cuh"

#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kRowsPerCta = 8;  // one warp per row

template <typename T>
__global__ void __launch_bounds__(kRowsPerCta * 32)
    matvec_any_kernel(const float* __restrict__ x, const T* __restrict__ w, const int rows, const int cols,
                      const float* __restrict__ bias, float* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kRowsPerCta + (threadIdx.x >> 5);
  grid_dependency_wait();
  if (row >= rows) return;
  const T* wr = w + size_t(row) * cols;
  const float* xt = x + size_t(blockIdx.y) * cols;
  float acc = 0.f;
  for (int c = lane; c < cols; c += 32) acc += load1(wr + c) * xt[c];
  acc = warp_sum(acc);
  if (lane == 0) y[size_t(blockIdx.y) * rows + row] = acc + (bias ? bias[row] : 0.f);
}

template <typename T>
void launch(const float* x, int n, const void* w, int rows, int cols, const float* bias, float* y, cudaStream_t s) {
  const dim3 grid((rows + kRowsPerCta - 1) / kRowsPerCta, n);
  launch_chained("matvec_any_kernel", matvec_any_kernel<T>, grid, dim3(kRowsPerCta * 32), 0, s, x,
                 static_cast<const T*>(w), rows, cols, bias, y);
}

}  // namespace

void matvec_any(const float* x, int n, const void* w, WeightType type, int rows, int cols, const float* bias, float* y,
                cudaStream_t stream) {
  if (n <= 0 || rows <= 0 || cols <= 0) throw std::runtime_error("matvec_any: empty shape");
  switch (type) {
    case WeightType::F32: return launch<float>(x, n, w, rows, cols, bias, y, stream);
    case WeightType::F16: return launch<__half>(x, n, w, rows, cols, bias, y, stream);
    case WeightType::BF16: return launch<__nv_bfloat16>(x, n, w, rows, cols, bias, y, stream);
  }
  throw std::runtime_error("matvec_any: unknown weight type");
}

}  // namespace rl::cuda
