// Whole-model logits of the CPU and CUDA backends against transformers, without Node.js (for the
// GPU machine): reads the specs written by forward-specs.ts and, for each backend, runs
//   batch    every position's logits of the reference ids in one forward
//   decode   greedy decoding from the prompt, one token per forward: ids and logits
//   fork     a prefix forked mid-block (copy-on-write tail), the same prefix exported and imported
//            into a new sequence (kv_io), and a truncated sequence, each continued to the end:
//            logits of the continued positions
// and prints one JSON line per (model, backend: cpu, cuda, and cuda-half: CUDA with
// PrefillPrecision::Half). Exit status 1 when a max |dlogit| exceeds its tolerance (1e-3; cuda-half
// 3% of the largest |logit|) or the greedy ids differ from transformers'.
//   forward_check SPEC... (run from the repository root; build: bench/gpu/build_forward_check.sh)
// Timing (CUDA build): forward_check --time SPEC CONTEXT STEPS [--budget B] [--prefill-limit S]
// [--decode-limit S] [--prhs-expand 0|1] [--prefill-precision float32|half] warms up (weights uploaded), prefills CONTEXT random ids
// on the CUDA backend in pieces of 4096, then decodes STEPS greedy tokens on a fork of the prefix
// densely and, with --budget, on more forks with PrHS at that budget (the settings' other
// defaults): "prhs_held" with delta_target 1 (certificates computed, never expanded: held to the
// budget) and "prhs" as the extension runs it (unless --prhs-expand 0). One JSON line: prefill
// tokens/s, decode ms/token (median, mean, min, max; a mode stops after --decode-limit seconds, 3
// steps at least), the dense floor (weight bytes + float32 KV bytes read per token, over the
// device-to-device copy bandwidth measured in the run), PrHS's counters (share of KV read, summary
// bytes per step), device memory used (cudaMemGetInfo, growth since before the model), the greedy
// ids. With --prefill-limit a prefill projected (fit after each piece) to take longer is given up:
// the line says prefill_skipped, with the projection, and nothing is decoded. bench/gpu/e2e.py runs it.
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
// "cuda-half": the CUDA backend with its prefill products and attention on 16-bit operands
// (PrefillPrecision::Half, as transformers' bf16 prefill); decode steps stay float32-exact. Its
// bound is relative to the golden logits' largest magnitude: transformers' own bf16 forward lies
// 3.2-5.6% of it from its float32 golden on the fixtures (bench/gpu/transformers_bf16.py, H100).
constexpr double kHalfRelativeTolerance = 3e-2;

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
  if (name == "cuda-half") return rl::cuda::make_cuda_backend(rl::cuda::PrefillPrecision::Half);
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

  double largest = 0;
  for (float v : expected) largest = std::max(largest, double(std::fabs(v)));
  const double tolerance = backend == "cuda-half" ? kHalfRelativeTolerance * largest : kTolerance;
  const bool ok = ids_match && batch_error <= tolerance && decode_error <= tolerance && fork_error <= tolerance;
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

// Device memory in use on GPU 0, every process and the CUDA context included (cudaMemGetInfo).
double device_bytes_in_use() {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) throw std::runtime_error("cudaMemGetInfo failed");
  return double(total - free);
}

struct TimeOptions {
  std::string spec;
  int context = 0, steps = 0;
  double budget = 0;               // PrHS budget; 0: dense decode only
  double prefill_limit_s = 1e30;   // give up a prefill projected to take longer
  double decode_limit_s = 1e30;    // stop a decode mode's steps after this long (3 steps at least)
  bool prhs_expand = true;         // also time PrHS as the extension runs it (its certificate may expand)
  rl::cuda::PrefillPrecision prefill = rl::cuda::PrefillPrecision::Float32;
};

struct DecodeRun {
  std::vector<double> step_s;  // seconds of each step, ascending
  std::vector<int32_t> ids;    // the ids fed, greedy from the prefill's next token
  rl::prhs::Counters counters; // of the sparse policy, when one ran
  rl::EarlyStats early;        // decode layers written early and redone (Model::settle_early), this run's
};

// Greedy decode on a fork of `seq` (the prefix stays for the next mode), `steps` tokens or fewer
// when `limit_s` has passed; each step is timed until its logits are on the host.
DecodeRun time_steps(rl::Model& model, int seq, int32_t first, int steps, double limit_s) {
  const int fork = model.fork_sequence(seq);
  std::vector<float> logits(model.arch().vocab_size);
  DecodeRun run;
  int32_t next = first;
  const rl::EarlyStats early0 = model.early_stats();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps && (i < 3 || seconds_since(start) < limit_s); i++) {
    run.ids.push_back(next);
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(fork, &next, 1, rl::LogitsWanted::Last, logits.data());
    run.step_s.push_back(seconds_since(t0));
    next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  model.free_sequence(fork);
  if (model.decode_attention()) run.counters = model.decode_attention()->counters();
  run.early = {model.early_stats().layers - early0.layers, model.early_stats().redone - early0.redone};
  std::sort(run.step_s.begin(), run.step_s.end());
  return run;
}

std::string json_ids(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); i++) out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + "]";
}

// One decode mode's JSON member: step times, and for a sparse policy its counters.
std::string json_decode(const char* name, const DecodeRun& r, const rl::ModelArch& a, bool sparse) {
  double sum = 0;
  for (double t : r.step_s) sum += t;
  char buf[1024];
  std::snprintf(buf, sizeof buf, ", \"%s\": {\"steps_done\": %zu, \"decode_median_ms\": %.3f, \"decode_mean_ms\": %.3f, \"decode_min_ms\": %.3f, "
                "\"decode_max_ms\": %.3f",
                name, r.step_s.size(), r.step_s[r.step_s.size() / 2] * 1e3, sum / r.step_s.size() * 1e3, r.step_s.front() * 1e3,
                r.step_s.back() * 1e3);
  std::string out = buf;
  if (sparse) {
    const rl::prhs::Counters& c = r.counters;
    const double steps = double(std::max<long>(c.steps, 1));
    const double read_bytes = double(c.entries_read) * a.head_dim * 2 * sizeof(float) / steps;  // K and V, float32
    std::snprintf(buf, sizeof buf, ", \"entries_read_share\": %.4f, \"kv_bytes_read_per_step\": %.0f, \"summary_bytes_per_step\": %.0f, "
                  "\"selections\": %ld, \"scoring_passes\": %ld, \"certified\": %ld, \"expanded\": %ld, \"early_layers\": %ld, \"early_redone\": %ld",
                  c.entries_context ? double(c.entries_read) / c.entries_context : 0.0, read_bytes, c.summary_bytes / steps, c.selections,
                  c.scoring_passes, c.certified, c.expanded, r.early.layers, r.early.redone);
    out += buf;
  }
  return out + ", \"greedy_ids\": " + json_ids(r.ids) + "}";
}

// The --time mode: one JSON line (see the comment at the top of this file).
void time_decode(const TimeOptions& o) {
  CheckSpec c = read_check_spec(o.spec);
  const int bs = c.spec.kv_block_size;
  c.spec.context_tokens = std::max(c.spec.context_tokens, o.context + o.steps);
  // A warm-up of one prefill chunk (1024 tokens in the CUDA backend), as e2e.py warms transformers up
  // with a prefill: weights uploaded, the device KV mirror made, kernels and cuBLASLt's plans loaded.
  const int warm_tokens = std::min(o.context, 1024);
  // the prefix, one decode fork at a time (it may copy the tail block) and the warm-up
  c.spec.kv_blocks = (o.context + bs - 1) / bs + (o.steps + bs - 1) / bs + (warm_tokens + bs - 1) / bs + 1;
  const rl::ModelArch& a = c.spec.arch;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) throw std::runtime_error("no CUDA device");
  const double bandwidth = copy_bandwidth();
  const double in_use_before = device_bytes_in_use();
  rl::Model model(c.spec, rl::cuda::make_cuda_backend(o.prefill));
  std::vector<int32_t> ids(o.context);
  uint32_t state = 12345;  // e2e.py draws the same ids for transformers
  for (auto& id : ids) id = static_cast<int32_t>((state = state * 1664525u + 1013904223u) % uint32_t(a.vocab_size));
  std::vector<float> logits(a.vocab_size);

  const int warm = model.new_sequence();
  model.forward(warm, ids.data(), warm_tokens, rl::LogitsWanted::Last, logits.data());
  model.free_sequence(warm);

  // Prefill in pieces; after each, the time so far is fitted by a·P + b·P² (the attention part
  // grows with the position) and the prefill is given up when the fit says it would run past the limit.
  const int seq = model.new_sequence();
  const int piece = 4096;
  std::vector<double> at, elapsed;  // tokens prefilled, seconds since the prefill began
  const auto t0 = std::chrono::steady_clock::now();
  double projected = 0;
  for (int done = 0; done < o.context;) {
    const int n = std::min(piece, o.context - done);
    model.forward(seq, ids.data() + done, n, done + n == o.context ? rl::LogitsWanted::Last : rl::LogitsWanted::None, logits.data());
    done += n;
    at.push_back(done);
    elapsed.push_back(seconds_since(t0));
    if (done == o.context) break;
    // least squares for E = a·P + b·P² (no constant), a and b kept >= 0
    double s11 = 0, s12 = 0, s22 = 0, y1 = 0, y2 = 0;
    for (size_t i = 0; i < at.size(); i++) {
      const double p = at[i], p2 = p * p;
      s11 += p * p, s12 += p * p2, s22 += p2 * p2, y1 += p * elapsed[i], y2 += p2 * elapsed[i];
    }
    const double det = s11 * s22 - s12 * s12;
    double fa = y1 / s11, fb = 0;
    if (at.size() >= 2 && det > 0) {
      fa = (y1 * s22 - y2 * s12) / det, fb = (s11 * y2 - s12 * y1) / det;
      if (fb < 0) fa = y1 / s11, fb = 0;
      if (fa < 0) fa = 0, fb = y2 / s22;
    }
    projected = fa * o.context + fb * double(o.context) * o.context;
    if (elapsed.back() > o.prefill_limit_s || (at.size() >= 2 && projected > o.prefill_limit_s)) {
      std::printf("{\"spec\": \"%s\", \"backend\": \"cuda\", \"device\": \"%s\", \"context\": %d, \"prefill_skipped\": true, "
                  "\"prefilled_tokens\": %d, \"prefill_elapsed_s\": %.2f, \"prefill_projected_s\": %.1f, \"prefill_limit_s\": %.1f, "
                  "\"prefill_tokens_per_s_so_far\": %.1f, \"copy_bandwidth_Bps\": %.4g}\n",
                  o.spec.c_str(), prop.name, o.context, done, elapsed.back(), projected, o.prefill_limit_s, done / elapsed.back(), bandwidth);
      return;
    }
  }
  const double prefill_s = elapsed.back();
  double peak_in_use = device_bytes_in_use();
  const int32_t first = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // REPO_LENS_CUDA_TIMING=1: where each mode's host time in the sparse policy went (stderr).
  auto timing = [](const char* mode) {
    const std::string t = rl::cuda::take_policy_timing();
    if (!t.empty() && mode) std::fprintf(stderr, "policy_timing %s %s\n", mode, t.c_str());
  };
  timing(nullptr);  // the prefill's
  const DecodeRun dense = time_steps(model, seq, first, o.steps, o.decode_limit_s);
  timing("dense");
  peak_in_use = std::max(peak_in_use, device_bytes_in_use());
  // PrHS at the budget, the settings' other defaults (host selection, GPU attention): first held
  // to the budget (delta_target 1: certificates computed, never expanded), then as the extension runs it.
  DecodeRun held, prhs;
  if (o.budget > 0) {
    for (DecodeRun* run : {&held, &prhs}) {
      if (run == &prhs && !o.prhs_expand) continue;
      rl::prhs::Params p;
      p.mode = rl::prhs::Mode::Prhs;
      p.budget = o.budget;
      if (run == &held) p.delta_target = 1.0;
      model.set_decode_attention(std::make_unique<rl::prhs::DecodeAttention>(p, a.num_layers, a.num_heads, a.num_kv_heads, a.head_dim));
      *run = time_steps(model, seq, first, o.steps, o.decode_limit_s);
      timing(run == &held ? "prhs_held" : "prhs");
      peak_in_use = std::max(peak_in_use, device_bytes_in_use());
    }
    model.set_decode_attention(nullptr);
  }

  const double weight_bytes = double(model.stats().weight_bytes);
  const double kv_bytes = double(o.context) * a.num_layers * a.num_kv_heads * a.head_dim * 2 * sizeof(float);
  const double floor_s = (weight_bytes + kv_bytes) / bandwidth;
  std::string line;
  char head[2048];
  std::snprintf(head, sizeof head,
                "{\"spec\": \"%s\", \"backend\": \"cuda\", \"device\": \"%s\", \"context\": %d, \"steps\": %d, \"block_size\": %d, "
                "\"prefill_skipped\": false, \"prefill_precision\": \"%s\", \"prefill_s\": %.3f, \"prefill_tokens_per_s\": %.1f, \"prefill_piece_tokens\": %d, "
                "\"weight_bytes\": %.0f, \"kv_bytes_fp32\": %.0f, \"copy_bandwidth_Bps\": %.4g, \"device_bytes_used\": %.0f, "
                "\"dense_floor_ms\": %.3f, \"dense_over_floor\": %.2f",
                o.spec.c_str(), prop.name, o.context, o.steps, bs, o.prefill == rl::cuda::PrefillPrecision::Half ? "half" : "float32",
                prefill_s, o.context / prefill_s, piece, weight_bytes, kv_bytes, bandwidth,
                peak_in_use - in_use_before, floor_s * 1e3, dense.step_s[dense.step_s.size() / 2] / floor_s);
  line = head;
  line += ", \"prefill_elapsed_s\": [";  // after each piece: the attention's share grows with the position
  for (size_t i = 0; i < elapsed.size(); i++) line += (i ? ", " : "") + std::to_string(elapsed[i]);
  line += "]" + json_decode("dense", dense, a, false);
  if (o.budget > 0) {
    std::snprintf(head, sizeof head, ", \"budget\": %g", o.budget);
    line += head + json_decode("prhs_held", held, a, true);
    if (o.prhs_expand) line += json_decode("prhs", prhs, a, true);
  }
  std::printf("%s}\n", line.c_str());
}

TimeOptions parse_time_options(int argc, char** argv) {
  if (argc < 5) throw std::runtime_error("usage: forward_check --time SPEC CONTEXT STEPS [--budget B] [--prefill-limit S] [--decode-limit S] [--prhs-expand 0|1] "
                                       "[--prefill-precision float32|half]");
  TimeOptions o;
  o.spec = argv[2];
  o.context = std::stoi(argv[3]);
  o.steps = std::stoi(argv[4]);
  for (int i = 5; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--budget") o.budget = std::stod(argv[i + 1]);
    else if (flag == "--prefill-limit") o.prefill_limit_s = std::stod(argv[i + 1]);
    else if (flag == "--decode-limit") o.decode_limit_s = std::stod(argv[i + 1]);
    else if (flag == "--prhs-expand") o.prhs_expand = std::stoi(argv[i + 1]) != 0;
    else if (flag == "--prefill-precision") {
      const std::string v = argv[i + 1];
      if (v != "float32" && v != "half") throw std::runtime_error("--prefill-precision must be float32 or half, found " + v);
      o.prefill = v == "half" ? rl::cuda::PrefillPrecision::Half : rl::cuda::PrefillPrecision::Float32;
    } else {
      throw std::runtime_error("--time: unknown option " + flag);
    }
  }
  if ((argc - 5) % 2 != 0) throw std::runtime_error(std::string("--time: ") + argv[argc - 1] + " needs a value");
  if (o.context < 1 || o.steps < 1) throw std::runtime_error("--time: CONTEXT and STEPS must be positive");
  return o;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool ok = true;
  try {
#ifdef REPO_LENS_CUDA
    if (argc >= 2 && std::string(argv[1]) == "--time") {
      time_decode(parse_time_options(argc, argv));
      return 0;
    }
#endif
    for (int i = 1; i < argc; i++) {
      for (const char* backend : {"cpu", "cuda", "cuda-half"}) {
#ifndef REPO_LENS_CUDA
        if (std::string(backend) != "cpu") continue;
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
