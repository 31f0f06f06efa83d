// Runs the CPU reference's sparse decode selection (native/prhs, DecodeAttention) on keys and
// queries given on stdin and prints every step's records as JSON lines, for the test that the
// WebGPU engine's selection (webview/gpu/prhs) is identical. Built with g++ by that test.
//
// stdin: one text line of settings (mode keyBound budget budgetTokens sinks window tau maxReuse
// dilation dilateTop layerGroup depthSchedule depthStartLayer depthPhi depthAlpha deltaTarget
// certifyEvery strict audit), one text line of shape (layers heads kvHeads headDim blockSize
// prompt steps), then float32 binary: keys and values [layers][prompt+steps][kvHeads][headDim]
// each, then queries [steps][layers][heads][headDim]. Step s attends with context prompt+s+1.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "prhs/decode_attention.h"

using namespace rl::prhs;

namespace {

// One layer's keys/values in [position][kvHead][headDim] layout, copied per block and head into
// the contiguous [fill][headDim] form LayerBlocks hands out.
class ArrayBlocks : public LayerBlocks {
 public:
  ArrayBlocks(const float* k, const float* v, int kv_heads, int head_dim, int block_size, int context)
      : kv_heads_(kv_heads), d_(head_dim), bs_(block_size), ctx_(context) {
    const int nb = n_blocks();
    keys_.resize(static_cast<size_t>(nb) * kv_heads * bs_ * d_);
    values_.resize(keys_.size());
    min_.assign(static_cast<size_t>(nb) * kv_heads * d_, 0);
    max_.assign(min_.size(), 0);
    for (int b = 0; b < nb; b++) {
      for (int h = 0; h < kv_heads; h++) {
        for (int j = 0; j < fill(b); j++) {
          const size_t src = (static_cast<size_t>(b * bs_ + j) * kv_heads + h) * d_;
          const size_t dst = ((static_cast<size_t>(b) * kv_heads + h) * bs_ + j) * d_;
          for (int i = 0; i < d_; i++) {
            keys_[dst + i] = k[src + i];
            values_[dst + i] = v[src + i];
            float& lo = min_[(static_cast<size_t>(b) * kv_heads + h) * d_ + i];
            float& hi = max_[(static_cast<size_t>(b) * kv_heads + h) * d_ + i];
            if (j == 0 || k[src + i] < lo) lo = k[src + i];
            if (j == 0 || k[src + i] > hi) hi = k[src + i];
          }
        }
      }
    }
  }
  int n_kv_heads() const override { return kv_heads_; }
  int head_dim() const override { return d_; }
  int block_size() const override { return bs_; }
  int context() const override { return ctx_; }
  long storage_id(int b) const override { return b; }
  const float* keys(int b, int h) const override { return keys_.data() + (static_cast<size_t>(b) * kv_heads_ + h) * bs_ * d_; }
  const float* values(int b, int h) const override { return values_.data() + (static_cast<size_t>(b) * kv_heads_ + h) * bs_ * d_; }
  const float* key_min(int b, int h) const override { return min_.data() + (static_cast<size_t>(b) * kv_heads_ + h) * d_; }
  const float* key_max(int b, int h) const override { return max_.data() + (static_cast<size_t>(b) * kv_heads_ + h) * d_; }

 private:
  int kv_heads_, d_, bs_, ctx_;
  std::vector<float> keys_, values_, min_, max_;
};

void number_or_null(double x) {
  if (x < 0) std::printf("null");
  else std::printf("%.17g", x);
}

}  // namespace

int main() {
  Params p;
  std::string mode, bound;
  int depth = 0, strict = 0, audit = 0;
  std::cin >> mode >> bound >> p.budget >> p.budget_tokens >> p.sinks >> p.window >> p.tau >> p.max_reuse >> p.dilation >> p.dilate_top >>
      p.layer_group >> depth >> p.depth_start_layer >> p.depth_phi >> p.depth_alpha >> p.delta_target >> p.certify_every >> strict >> audit;
  p.mode = mode == "prhs" ? Mode::Prhs : mode == "quest" ? Mode::Quest : mode == "oracle" ? Mode::Oracle : mode == "streaming" ? Mode::Streaming : Mode::Dense;
  p.key_bound = bound == "int8" ? KeyBound::Int8 : bound == "int4" ? KeyBound::Int4 : KeyBound::MinMax;
  p.depth_schedule = depth != 0;
  p.strict = strict != 0;
  p.audit = audit != 0;
  int layers, heads, kv_heads, d, bs, prompt, steps;
  std::cin >> layers >> heads >> kv_heads >> d >> bs >> prompt >> steps;
  std::cin.get();  // the newline before the binary data
  const size_t n = static_cast<size_t>(prompt + steps);
  const size_t per_layer = n * kv_heads * d;
  std::vector<float> keys(layers * per_layer), values(layers * per_layer), queries(static_cast<size_t>(steps) * layers * heads * d);
  for (auto* v : {&keys, &values, &queries}) {
    if (!std::cin.read(reinterpret_cast<char*>(v->data()), static_cast<std::streamsize>(v->size() * sizeof(float)))) {
      std::fprintf(stderr, "short input\n");
      return 1;
    }
  }

  DecodeAttention att(p, layers, heads, kv_heads, d);
  std::vector<float> out(static_cast<size_t>(heads) * d);
  for (int s = 0; s < steps; s++) {
    for (int l = 0; l < layers; l++) {
      ArrayBlocks kv(keys.data() + l * per_layer, values.data() + l * per_layer, kv_heads, d, bs, prompt + s + 1);
      att.attend(l, queries.data() + (static_cast<size_t>(s) * layers + l) * heads * d, kv, out.data());
    }
    std::printf("{\"step\":%d,\"layers\":[", att.step());
    for (int l = 0; l < layers; l++) {
      std::printf(l ? ",[" : "[");
      for (int h = 0; h < kv_heads; h++) {
        const HeadRecord& r = att.records()[static_cast<size_t>(l) * kv_heads + h];
        std::printf(h ? ",{\"blocks\":[" : "{\"blocks\":[");
        for (size_t i = 0; i < r.blocks.size(); i++) std::printf(i ? ",%d" : "%d", r.blocks[i]);
        std::printf("],\"source\":\"%s\",\"deltaHat\":", source_name(r.source));
        number_or_null(r.delta_hat);
        std::printf(",\"delta\":");
        number_or_null(r.delta);
        std::printf(",\"expanded\":%d,\"entriesRead\":%ld}", r.expanded, r.entries_read);
      }
      std::printf("]");
    }
    std::printf("]}\n");
  }
  const Counters& c = att.counters();
  std::printf("{\"counters\":{\"steps\":%ld,\"selections\":%ld,\"scoringPasses\":%ld,\"certifyPasses\":%ld,\"certified\":%ld,\"expanded\":%ld,\"entriesRead\":%ld,\"entriesContext\":%ld,\"summaryBytes\":%ld}}\n",
              c.steps, c.selections, c.scoring_passes, c.certify_passes, c.certified, c.expanded, c.entries_read, c.entries_context, c.summary_bytes);
  return 0;
}
