// Whole-model logits of the CPU and CUDA backends against transformers, without Node.js (for the
// GPU machine): reads the specs written by forward-specs.ts and, for each backend, runs
//   batch    every position's logits of the reference ids in one forward
//   decode   greedy decoding from the prompt, one token per forward: ids and logits
//   fork     a prefix forked mid-block (copy-on-write tail), the same prefix exported and imported
//            into a new sequence (kv_io), and a truncated sequence, each continued to the end:
//            logits of the continued positions
// and prints one JSON line per (model, backend). Exit status 1 when a max |dlogit| exceeds 1e-3 or
// the greedy ids differ from transformers'.
//   forward_check SPEC... (run from the repository root; build: bench/gpu/build_forward_check.sh)
// Timing (CUDA build): forward_check --time SPEC CONTEXT STEPS prefills CONTEXT random ids on the
// CUDA backend, times STEPS decode steps (median), and sets them beside the floor: weight bytes +
// float32 KV bytes read per token, over the device-to-device copy bandwidth measured in the run.
// A 5th argument BUDGET times decode with PrHS at that budget (the settings' other defaults); the
// floor stays the dense one.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "check_spec.h"
#include "cpu/cpu_backend.h"
#include "kv/kv_io.h"
#include "model/model.h"
#ifdef REPO_LENS_CUDA
#include <cuda_runtime.h>

#include "cuda/backend_cuda.h"
#endif

namespace {

constexpr double kTolerance = 1e-3;

std::vector<float> read_f32(const std::string& path, size_t count) {
  std::ifstream file(path, std::ios::binary);
  std::vector<float> out(count);
  if (!file.read(reinterpret_cast<char*>(out.data()), count * sizeof(float))) throw std::runtime_error(path + ": too short");
  return out;
}

// max |a - b| over `count` floats (NaN counts as infinitely wrong).
double max_diff(const float* a, const float* b, size_t count) {
  double m = 0;
  for (size_t i = 0; i < count; i++) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

std::unique_ptr<rl::Backend> make_backend(const std::string& name) {
  if (name == "cpu") return std::make_unique<rl::CpuBackend>(2);
#ifdef REPO_LENS_CUDA
  if (name == "cuda") return rl::cuda::make_cuda_backend();
#endif
  throw std::runtime_error("no backend " + name + " in this build");
}

// Returns whether every check passed; prints one JSON line.
bool run(const std::string& spec_path, const std::string& backend) {
  const CheckSpec c = read_check_spec(spec_path);
  const int vocab = c.spec.arch.vocab_size, total = static_cast<int>(c.ids.size());
  const std::vector<float> expected = read_f32(c.logits_path, size_t(total) * vocab);
  rl::Model model(c.spec, make_backend(backend));

  // batch: every position in one forward.
  std::vector<float> logits(size_t(total) * vocab);
  model.forward(model.new_sequence(), c.ids.data(), total, rl::LogitsWanted::All, logits.data());
  const double batch_error = max_diff(logits.data(), expected.data(), logits.size());

  // decode: greedy from the prompt (the reference logits are those of the greedy ids).
  const int seq = model.new_sequence(), p = static_cast<int>(c.prompt.size());
  std::vector<int32_t> ids = c.prompt;
  std::vector<float> decoded(size_t(p) * vocab);
  model.forward(seq, ids.data(), p, rl::LogitsWanted::All, decoded.data());
  std::vector<float> last(decoded.end() - vocab, decoded.end());
  while (ids.size() < c.greedy.size()) {
    ids.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
    if (ids.size() == c.greedy.size()) break;
    model.forward(seq, &ids.back(), 1, rl::LogitsWanted::Last, last.data());
    decoded.insert(decoded.end(), last.begin(), last.end());
  }
  const bool ids_match = ids == c.greedy;
  const size_t compared = std::min(decoded.size(), expected.size());
  const double decode_error = max_diff(decoded.data(), expected.data(), compared);

  // fork + truncate: continue a forked prefix that ends inside a block, and a truncated sequence.
  const int split = c.spec.kv_block_size * 2 + 5, cut = c.spec.kv_block_size + 3;
  const int parent = model.new_sequence();
  model.forward(parent, c.ids.data(), split, rl::LogitsWanted::None, nullptr);
  const int child = model.fork_sequence(parent);
  std::vector<float> span(rl::kv_span_floats(model.kv().shape(), split));
  rl::kv_export(model.kv(), parent, 0, split, span.data());
  const int imported = model.new_sequence();
  rl::kv_import(model.kv(), imported, split, span.data());
  double fork_error = 0;
  std::vector<float> rest(size_t(total) * vocab);
  for (int s : {child, parent, imported}) {
    model.forward(s, c.ids.data() + split, total - split, rl::LogitsWanted::All, rest.data());
    fork_error = std::max(fork_error, max_diff(rest.data(), expected.data() + size_t(split) * vocab, size_t(total - split) * vocab));
  }
  model.truncate_sequence(parent, cut);
  model.forward(parent, c.ids.data() + cut, total - cut, rl::LogitsWanted::All, rest.data());
  fork_error = std::max(fork_error, max_diff(rest.data(), expected.data() + size_t(cut) * vocab, size_t(total - cut) * vocab));

  const bool ok = ids_match && batch_error <= kTolerance && decode_error <= kTolerance && fork_error <= kTolerance;
  std::printf("{\"spec\": \"%s\", \"backend\": \"%s\", \"positions\": %d, \"batch_max_abs\": %.3g, \"decode_max_abs\": %.3g, "
              "\"fork_import_truncate_max_abs\": %.3g, \"greedy_ids_identical\": %s, \"decoded_tokens\": %zu, \"pass\": %s}\n",
              spec_path.c_str(), backend.c_str(), total, batch_error, decode_error, fork_error, ids_match ? "true" : "false",
              c.greedy.size() - c.prompt.size(), ok ? "true" : "false");
  return ok;
}

#ifdef REPO_LENS_CUDA
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Device-to-device copy rate (bytes read + written per second), the median of 7 copies of 1 GiB.
double copy_bandwidth() {
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) throw std::runtime_error("cudaMalloc for the copy");
  std::vector<double> rates;
  for (int i = 0; i < 7; i++) {
    cudaDeviceSynchronize();
    const auto t0 = std::chrono::steady_clock::now();
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    rates.push_back(2.0 * bytes / seconds_since(t0));
  }
  cudaFree(a);
  cudaFree(b);
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

void time_decode(const std::string& spec_path, int context, int steps, double prhs_budget) {
  CheckSpec c = read_check_spec(spec_path);
  c.spec.context_tokens = std::max(c.spec.context_tokens, context + steps);
  c.spec.kv_blocks = (context + steps + c.spec.kv_block_size - 1) / c.spec.kv_block_size;  // one sequence
  const rl::ModelArch& a = c.spec.arch;
  const double bandwidth = copy_bandwidth();
  rl::Model model(c.spec, make_backend("cuda"));
  std::vector<int32_t> ids(context);
  uint32_t state = 12345;
  for (auto& id : ids) id = static_cast<int32_t>((state = state * 1664525u + 1013904223u) % uint32_t(a.vocab_size));
  std::vector<float> logits(a.vocab_size);
  const int seq = model.new_sequence();
  auto t0 = std::chrono::steady_clock::now();
  model.forward(seq, ids.data(), context, rl::LogitsWanted::Last, logits.data());
  const double prefill_s = seconds_since(t0);
  if (prhs_budget > 0) {  // PrHS with the extension's defaults at this budget: host selection, GPU attention
    rl::prhs::Params p;
    p.mode = rl::prhs::Mode::Prhs;
    p.budget = prhs_budget;
    model.set_decode_attention(std::make_unique<rl::prhs::DecodeAttention>(p, a.num_layers, a.num_heads, a.num_kv_heads, a.head_dim));
  }
  std::vector<double> step_s;
  for (int i = 0; i < steps; i++) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    t0 = std::chrono::steady_clock::now();
    model.forward(seq, &next, 1, rl::LogitsWanted::Last, logits.data());  // returns once the logits are on the host
    step_s.push_back(seconds_since(t0));
  }
  std::sort(step_s.begin(), step_s.end());
  const double median = step_s[step_s.size() / 2];
  const double weight_bytes = double(model.stats().weight_bytes);
  const double kv_bytes = double(context) * a.num_layers * a.num_kv_heads * a.head_dim * 2 * sizeof(float);
  const double floor_s = (weight_bytes + kv_bytes) / bandwidth;
  std::printf("{\"spec\": \"%s\", \"backend\": \"cuda\", \"attention\": \"%s\", \"context\": %d, \"steps\": %d, \"prefill_s\": %.3f, "
              "\"prefill_tokens_per_s\": %.1f, \"decode_median_ms\": %.3f, \"decode_min_ms\": %.3f, \"weight_bytes\": %.0f, "
              "\"kv_bytes_fp32\": %.0f, \"copy_bandwidth_Bps\": %.4g, \"floor_ms\": %.3f, \"decode_over_floor\": %.2f}\n",
              spec_path.c_str(), prhs_budget > 0 ? ("prhs " + std::to_string(prhs_budget)).c_str() : "dense", context, steps, prefill_s, context / prefill_s, median * 1e3, step_s.front() * 1e3, weight_bytes,
              kv_bytes, bandwidth, floor_s * 1e3, median / floor_s);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool ok = true;
  try {
#ifdef REPO_LENS_CUDA
    if ((argc == 5 || argc == 6) && std::string(argv[1]) == "--time") {
      time_decode(argv[2], std::stoi(argv[3]), std::stoi(argv[4]), argc == 6 ? std::stod(argv[5]) : 0.0);
      return 0;
    }
#endif
    for (int i = 1; i < argc; i++) {
      for (const char* backend : {"cpu", "cuda"}) {
#ifndef REPO_LENS_CUDA
        if (std::string(backend) == "cuda") continue;
#endif
        ok = run(argv[i], backend) && ok;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forward_check: %s\n", e.what());
    return 2;
  }
  return ok ? 0 : 1;
}
