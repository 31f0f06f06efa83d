// The host's time in DecodeAttention (prepare + attend) per layer, with a device that answers at once:
// what the CUDA engine's policy costs on the host where the GPU would leave it nothing to wait for.
// Shapes as the random Qwen2.5-1.5B model (28 layers, 12 heads, 2 KV heads, head dim 128, blocks of
// 32), PrHS held to 5 % (delta_target 1). `drift` 1 changes q enough every step that every layer
// scores; 0 keeps it, so layers reuse their anchors. Compare two builds in one run (A/B), e.g.:
//   g++ -std=c++17 -O2 -Inative bench/gpu/policy_host.cc $(ls native/prhs/*.cc | grep -v napi) -o /tmp/policy_host
//   /tmp/policy_host [context=131072] [drift=1] [steps=40]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "prhs/decode_attention.h"

using namespace rl::prhs;

namespace {

std::mt19937_64 rng(1);

// Only the shape: with bounds from the device, the selection reads no key.
struct ShapeOnly final : LayerBlocks {
  int ctx = 0, hd = 0, kv_heads = 0, bs = 0;
  int n_kv_heads() const override { return kv_heads; }
  int head_dim() const override { return hd; }
  int block_size() const override { return bs; }
  int context() const override { return ctx; }
  long storage_id(int b) const override { return b; }
  const float* keys(int, int) const override { std::abort(); }
  const float* values(int, int) const override { std::abort(); }
  const float* key_min(int, int) const override { std::abort(); }
  const float* key_max(int, int) const override { std::abort(); }
};

struct InstantHead final : HeadAttention {
  void add_block(int) override {}
  double lse(int g) override { return 5.0 + g; }
  void write() override {}
};

// Scores drawn from a fixed pool of heavy-tailed values (as softmax shares are), at a random offset.
struct InstantBounds final : BlockBounds {
  int group, n_blocks;
  const std::vector<double>& pool;
  InstantBounds(int group, int n_blocks, const std::vector<double>& pool) : group(group), n_blocks(n_blocks), pool(pool) {}
  void bound(int, const std::vector<char>&, int) override {}
  void lse(int, const std::vector<char>&, double* lse) override { for (int g = 0; g < group; g++) lse[g] = 1.0; }
  void scores(int, const std::vector<char>& mask, double* score) override {
    const size_t at = rng() % (pool.size() - n_blocks);
    for (int b = 0; b < n_blocks; b++) score[b] = mask[b] ? pool[at + b] : 0;
  }
  void read(int, double* table) override { std::fill(table, table + size_t(group) * n_blocks, -1.0); }
};

struct InstantDevice final : BlockAttention {
  int group = 0, n_blocks = 0;
  std::vector<double> pool;
  std::unique_ptr<HeadAttention> head(int, const double*) override { return std::make_unique<InstantHead>(); }
  std::unique_ptr<BlockBounds> bounds(int, const double*) override { return std::make_unique<InstantBounds>(group, n_blocks, pool); }
  bool attends_early() const override { return true; }
  bool bounds_early() const override { return true; }
  bool offers_bounds() const override { return true; }
  bool reads_host_cache() const override { return false; }
};

}  // namespace

int main(int argc, char** argv) {
  const int context = argc > 1 ? std::atoi(argv[1]) : 131072;
  const double drift = argc > 2 ? std::atof(argv[2]) : 1.0;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 40, warmup = 4;
  const int layers = 28, heads = 12, kv_heads = 2, hd = 128;
  Params p;
  p.mode = Mode::Prhs;
  p.budget = 0.05;
  p.delta_target = 1.0;
  DecodeAttention attention(p, layers, heads, kv_heads, hd);
  ShapeOnly kv;
  kv.ctx = context, kv.hd = hd, kv.kv_heads = kv_heads, kv.bs = 32;
  InstantDevice device;
  device.group = heads / kv_heads;
  std::exponential_distribution<double> e(1);
  device.pool.resize(1 << 20);
  for (double& x : device.pool) x = std::exp(-3 * e(rng));
  std::normal_distribution<float> normal(0, 1);
  std::vector<std::vector<float>> anchor(layers, std::vector<float>(heads * hd));
  for (std::vector<float>& q : anchor) for (float& x : q) x = normal(rng);
  std::vector<float> q(heads * hd);
  double total_us = 0;
  for (int s = 0; s < steps; s++) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int l = 0; l < layers; l++) {
      q = anchor[l];
      if (drift > 0) for (int i = 0; i < heads * hd; i += 16) q[i] += float(3 * drift) * normal(rng);
      device.n_blocks = kv.n_blocks();
      attention.prepare(l, kv, device);
      attention.attend(l, q.data(), kv, device);
    }
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) total_us += us;
    kv.ctx++;
  }
  const Counters& c = attention.counters();
  const double per_step = total_us / (steps - warmup);
  std::printf("{\"context\": %d, \"drift\": %g, \"us_per_step\": %.1f, \"us_per_layer\": %.2f, \"scoring_passes\": %ld, \"selections\": %ld}\n",
              context, drift, per_step, per_step / layers, c.scoring_passes, c.selections);
}
