// The REPO_LENS_CUDA_* switches of the CUDA backend, read by backend_cuda.cu and the sparse decode's
// device side (block_attention_cuda.cu). Plain C++.
#pragma once
#include <cstdlib>
#include <string>

namespace rl::cuda {

// A switch for A/B timing and diagnosis: on unless the environment sets `name` to 0.
inline bool switched_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::string(v) == "0");
}

}  // namespace rl::cuda
