// REPO_LENS_CUDA_TIMING=1's diagnostics of the sparse decode policy (take_policy_timing,
// backend_cuda.h): the sums, and Waiting, which times one wait for the device. Shared by the
// backend (backend_cuda.cu) and the sparse decode's device side (block_attention_cuda.cu). Plain C++.
#pragma once
#include <cstdlib>
#include <string>

namespace rl::cuda {

// REPO_LENS_CUDA_TIMING=1: the host's time in the sparse decode policy (Model::attend's sparse
// branch: from block_attention() to the end of the layer's selection, launches included) and in
// its waits for the device, by what it waited for; take_policy_timing() returns the sums and
// resets them. Off: nothing is measured.
struct PolicyTiming {
  enum Kind { Query, Flush, Scores, Sums, State, Table, Masses, Other, kKinds };
  static constexpr const char* kNames[kKinds] = {"query", "flush", "scores", "sums", "state", "table", "masses", "other"};
  bool on = std::getenv("REPO_LENS_CUDA_TIMING") && std::string(std::getenv("REPO_LENS_CUDA_TIMING")) == "1";
  long layers = 0, steps = 0;
  double attend_s = 0;
  long waits[kKinds] = {};
  double wait_s[kKinds] = {};
  // Per layer by what its selection waited for: scored (scores), certified (sums or the state; no
  // scores), plain (neither: a reused set), the host's time from block_attention() to the end of the
  // selection, its waits, and the time before it since the previous layer's selection ended (the
  // forward pass's other launches). A plain layer's time also by phase: setup (block_attention()),
  // prepare (to the q wait: DecodeAttention::prepare), q (that wait), decide (from q to the end:
  // attend(), finish()).
  enum Class { Plain, Certified, Scored, kClasses };
  static constexpr const char* kClassNames[kClasses] = {"plain", "certified", "scored"};
  enum Phase { Setup, Prepare, QWait, Decide, kPhases };
  static constexpr const char* kPhaseNames[kPhases] = {"setup", "prepare", "q", "decide"};
  long class_layers[kClasses] = {}, class_between[kClasses] = {};
  double class_s[kClasses] = {}, class_wait_s[kClasses] = {}, class_between_s[kClasses] = {};
  double phase_s[kPhases] = {};
  long layer_waits[kKinds] = {};  // the current layer's
  double layer_wait_s = 0;
  double last_end = 0;  // when the latest layer's selection ended
};
PolicyTiming& policy_timing();
double seconds_now();

// Times one wait for the device (when REPO_LENS_CUDA_TIMING=1).
class Waiting {
 public:
  explicit Waiting(PolicyTiming::Kind kind) : kind_(kind), t0_(policy_timing().on ? seconds_now() : 0) {}
  ~Waiting() {
    PolicyTiming& t = policy_timing();
    if (!t.on) return;
    const double waited = seconds_now() - t0_;
    t.waits[kind_]++;
    t.wait_s[kind_] += waited;
    t.layer_waits[kind_]++;
    t.layer_wait_s += waited;
  }
  Waiting(const Waiting&) = delete;
  Waiting& operator=(const Waiting&) = delete;

 private:
  PolicyTiming::Kind kind_;
  double t0_;
};

}  // namespace rl::cuda
