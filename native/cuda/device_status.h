// Whether this machine can run the CUDA backend, and why not (plain C++: included by addon.cc).
#pragma once
#include <string>

namespace rl::cuda {

struct DeviceStatus {
  bool usable = false;  // a GPU of compute capability 8.0+ answered
  std::string device;   // its name, when one answered
  std::string reason;   // why not, when not usable (the CUDA error named)
};

// Asks the CUDA runtime for device 0. Never throws: no driver, no GPU or an old GPU is a reason.
DeviceStatus device_status();

}  // namespace rl::cuda
