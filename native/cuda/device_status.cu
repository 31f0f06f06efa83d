#include "device_status.h"

#include <cuda_runtime.h>

namespace rl::cuda {

DeviceStatus device_status() {
  DeviceStatus s;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    s.reason = std::string("no usable CUDA driver or GPU: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
    return s;
  }
  if (count == 0) {
    s.reason = "the CUDA driver reports no GPU";
    return s;
  }
  cudaDeviceProp prop{};
  const cudaError_t perr = cudaGetDeviceProperties(&prop, 0);
  if (perr != cudaSuccess) {
    s.reason = std::string("cannot read GPU 0's properties: ") + cudaGetErrorName(perr);
    return s;
  }
  s.device = prop.name;
  if (prop.major < 8) {
    s.reason = s.device + " has compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
               "; the CUDA kernels need 8.0 or newer";
    return s;
  }
  s.usable = true;
  return s;
}

}  // namespace rl::cuda
