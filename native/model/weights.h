// The model's weights as views into the mapped safetensors files, checked defensively again
// (names, dtypes, shapes, byte ranges against the mapped sizes) even though the TypeScript loader
// already did: the addon must never read outside a mapping whatever spec it is handed.
#pragma once
#include <memory>
#include <vector>

#include "backend.h"
#include "model/mapped_file.h"
#include "model/spec.h"

namespace rl {

struct LayerWeights {
  Weight attn_norm;                // [hidden]
  Weight q, k, v;                  // [heads*head_dim][hidden], [kv_heads*head_dim][hidden] x2
  Weight q_bias, k_bias, v_bias;   // [heads*head_dim], [kv_heads*head_dim] x2 (Qwen2 only)
  Weight o;                        // [hidden][heads*head_dim]
  Weight ffn_norm;                 // [hidden]
  Weight gate, up;                 // [intermediate][hidden]
  Weight down;                     // [hidden][intermediate]
};

struct ModelWeights {
  Weight embed;                    // [vocab][hidden]
  std::vector<LayerWeights> layers;
  Weight norm;                     // [hidden]
  Weight lm_head;                  // [vocab][hidden] (the embedding table when tied)
  size_t bytes = 0;                // weight bytes read by the forward pass
};

class WeightStore {
 public:
  // Throws std::runtime_error naming the tensor and file on any inconsistency.
  explicit WeightStore(const ModelSpec& spec);
  const ModelWeights& weights() const { return weights_; }

 private:
  Weight view(const TensorSpec& t, const std::vector<int64_t>& expected_shape);

  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<std::unique_ptr<unsigned char[]>> realigned_;  // copies of tensors stored misaligned
  ModelWeights weights_;
};

}  // namespace rl
