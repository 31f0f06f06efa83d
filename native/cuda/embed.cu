#include "embed.cuh"

#include <stdexcept>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

template <typename T>
__global__ void embed_kernel(const T* __restrict__ table, const int dim, const int32_t* __restrict__ tokens,
                             float* __restrict__ out) {
  grid_dependency_wait();
  const T* row = table + size_t(tokens[blockIdx.x]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) out[size_t(blockIdx.x) * dim + i] = load1(row + i);
}

template <typename T>
void launch(const void* table, int dim, const int32_t* tokens, int n, float* out, cudaStream_t s) {
  launch_chained("embed_kernel", embed_kernel<T>, dim3(n), dim3(256), 0, s, static_cast<const T*>(table), dim, tokens,
                 out);
}

}  // namespace

void embed(const void* table, WeightType type, int dim, const int32_t* tokens, int n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  switch (type) {
    case WeightType::F32: return launch<float>(table, dim, tokens, n, out, stream);
    case WeightType::F16: return launch<__half>(table, dim, tokens, n, out, stream);
    case WeightType::BF16: return launch<__nv_bfloat16>(table, dim, tokens, n, out, stream);
  }
  throw std::runtime_error("embed: unknown weight type");
}

}  // namespace rl::cuda
