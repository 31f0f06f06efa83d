// policy_timing.h's sums and take_policy_timing (backend_cuda.h). Plain C++; a .cu so that the
// folder's nvcc rule and the build scripts take it with the backend's other sources.
#include "policy_timing.h"

#include <chrono>
#include <cstdio>
#include <string>

#include "backend_cuda.h"

namespace rl::cuda {

PolicyTiming& policy_timing() {
  static PolicyTiming t;
  return t;
}
double seconds_now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string take_policy_timing() {
  PolicyTiming& t = policy_timing();
  if (!t.on) return "";
  char buf[256];
  std::snprintf(buf, sizeof buf, "{\"steps\": %ld, \"layers\": %ld, \"attend_ms\": %.3f", t.steps, t.layers, t.attend_s * 1e3);
  std::string out = buf;
  double total = 0;
  for (int k = 0; k < PolicyTiming::kKinds; k++) {
    total += t.wait_s[k];
    std::snprintf(buf, sizeof buf, ", \"%s\": [%ld, %.3f]", PolicyTiming::kNames[k], t.waits[k], t.wait_s[k] * 1e3);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, ", \"waits_ms\": %.3f, \"per_step_ms\": {\"attend\": %.4f, \"waits\": %.4f}", total * 1e3,
                t.steps ? t.attend_s * 1e3 / t.steps : 0.0, t.steps ? total * 1e3 / t.steps : 0.0);
  out += buf;
  out += ", \"layer_us\": {";  // per class: layers, then mean µs of the layer, its waits, the launches before it
  for (int c = 0; c < PolicyTiming::kClasses; c++) {
    const long n = t.class_layers[c], nb = t.class_between[c];
    std::snprintf(buf, sizeof buf, "%s\"%s\": [%ld, %.2f, %.2f, %.2f]", c ? ", " : "", PolicyTiming::kClassNames[c], n, n ? t.class_s[c] * 1e6 / n : 0.0,
                  n ? t.class_wait_s[c] * 1e6 / n : 0.0, nb ? t.class_between_s[c] * 1e6 / nb : 0.0);
    out += buf;
  }
  out += "}, \"plain_us\": {";
  for (int k = 0; k < PolicyTiming::kPhases; k++) {
    const long n = t.class_layers[PolicyTiming::Plain];
    std::snprintf(buf, sizeof buf, "%s\"%s\": %.2f", k ? ", " : "", PolicyTiming::kPhaseNames[k], n ? t.phase_s[k] * 1e6 / n : 0.0);
    out += buf;
  }
  out += "}}";
  t = PolicyTiming{};
  return out;
}

}  // namespace rl::cuda
