// The plain-text model specs written by bench/gpu/forward-specs.ts, read by the GPU checks that run
// without Node.js (forward_check.cc, prhs_engine_check.cc): one ModelSpec with tensor paths
// relative to the repository root, plus the ids and the transformers logits to compare with.
#pragma once
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/spec.h"

struct CheckSpec {
  rl::ModelSpec spec;
  std::string logits_path;
  std::vector<int32_t> ids, prompt, greedy;
};

inline std::vector<int32_t> read_check_ids(std::istringstream& in) {
  size_t n = 0;
  in >> n;
  std::vector<int32_t> ids(n);
  for (auto& id : ids) in >> id;
  return ids;
}

inline CheckSpec read_check_spec(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error(path + ": cannot open (write the specs with node --import tsx bench/gpu/forward-specs.ts)");
  CheckSpec c;
  rl::ModelArch& a = c.spec.arch;
  std::string line;
  while (std::getline(file, line)) {
    std::istringstream in(line);
    std::string key;
    in >> key;
    if (key == "arch") {
      int bias = 0, tie = 0, llama3 = 0;
      in >> a.hidden_size >> a.intermediate_size >> a.num_layers >> a.num_heads >> a.num_kv_heads >> a.head_dim >> a.vocab_size >>
          a.max_positions >> a.rms_norm_eps >> a.rope_theta >> bias >> tie >> llama3 >> a.rope_scaling.factor >>
          a.rope_scaling.low_freq_factor >> a.rope_scaling.high_freq_factor >> a.rope_scaling.original_max_positions;
      a.attention_bias = bias, a.tie_embeddings = tie, a.rope_scaling.llama3 = llama3;
    } else if (key == "block_size") {
      in >> c.spec.kv_block_size;
    } else if (key == "context") {
      in >> c.spec.context_tokens;
    } else if (key == "tensor") {
      rl::TensorSpec t;
      size_t dims = 0;
      in >> t.name >> t.file >> t.dtype >> t.begin >> t.end >> dims;
      t.shape.resize(dims);
      for (auto& d : t.shape) in >> d;
      c.spec.tensors.push_back(t);
    } else if (key == "logits") {
      in >> c.logits_path;
    } else if (key == "ids") {
      c.ids = read_check_ids(in);
    } else if (key == "prompt") {
      c.prompt = read_check_ids(in);
    } else if (key == "greedy") {
      c.greedy = read_check_ids(in);
    }
    if (!key.empty() && in.fail()) throw std::runtime_error(path + ": cannot read the line starting \"" + key + "\"");
  }
  c.spec.threads = 2;
  return c;
}
