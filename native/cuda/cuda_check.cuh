// Error checking shared by the CUDA ops: every runtime call and every launch is checked, and a
// failure becomes a std::runtime_error naming the call, the file and the CUDA error.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace rl::cuda {

inline void check(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return;
  throw std::runtime_error(std::string("CUDA error in ") + what + " at " + file + ":" +
                           std::to_string(line) + ": " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")");
}

}  // namespace rl::cuda

#define RL_CUDA_CHECK(call) ::rl::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: catches bad launch configurations at once (not asynchronous faults).
#define RL_CUDA_CHECK_LAUNCH(name) ::rl::cuda::check(cudaGetLastError(), name, __FILE__, __LINE__)
