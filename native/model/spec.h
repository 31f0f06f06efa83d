// What the addon is asked to load: the C++ mirror of NativeModelSpec in src/model/native.ts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rl {

struct RopeScaling {
  bool llama3 = false;  // false: no scaling
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  float original_max_positions = 8192.0f;
};

struct ModelArch {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_positions = 0;
  float rms_norm_eps = 1e-6f;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;
  bool tie_embeddings = false;
};

struct TensorSpec {
  std::string name;
  std::string file;
  std::string dtype;  // "F32", "F16" or "BF16"
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // absolute byte range in `file`
  uint64_t end = 0;
};

struct ModelSpec {
  ModelArch arch;
  std::vector<TensorSpec> tensors;
  int kv_block_size = 32;
  int threads = 0;
  int context_tokens = 0;
  int kv_blocks = 0;  // 0: enough for four sequences of the whole context
};

}  // namespace rl
