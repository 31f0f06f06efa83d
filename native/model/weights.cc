#include "model/weights.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>

namespace rl {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

DType parse_dtype(const TensorSpec& t) {
  if (t.dtype == "F32") return DType::F32;
  if (t.dtype == "F16") return DType::F16;
  if (t.dtype == "BF16") return DType::BF16;
  throw std::runtime_error(t.file + ": tensor \"" + t.name + "\": dtype \"" + t.dtype + "\" is not supported (supported: F32, F16, BF16)");
}

}  // namespace

Weight WeightStore::view(const TensorSpec& t, const std::vector<int64_t>& expected) {
  const std::string where = t.file + ": tensor \"" + t.name + "\"";
  if (t.shape != expected) throw std::runtime_error(where + " has shape " + shape_text(t.shape) + ", but the config implies " + shape_text(expected));
  const DType dtype = parse_dtype(t);
  MappedFile* file = nullptr;
  for (auto& f : files_) {
    if (f->path() == t.file) file = f.get();
  }
  if (!file) {
    files_.push_back(std::make_unique<MappedFile>(t.file));
    file = files_.back().get();
  }
  uint64_t elements = 1;
  for (int64_t d : t.shape) elements *= static_cast<uint64_t>(d);
  const uint64_t bytes = elements * dtype_bytes(dtype);
  if (t.begin > t.end || t.end > file->size()) {
    throw std::runtime_error(where + ": bytes " + std::to_string(t.begin) + ".." + std::to_string(t.end) + " lie outside the file (" + std::to_string(file->size()) + " bytes)");
  }
  if (t.end - t.begin != bytes) {
    throw std::runtime_error(where + ": " + std::to_string(t.end - t.begin) + " bytes, but " + t.dtype + " " + shape_text(t.shape) + " needs " + std::to_string(bytes));
  }
  const unsigned char* data = file->data() + t.begin;
  if (reinterpret_cast<uintptr_t>(data) % dtype_bytes(dtype) != 0) {
    // safetensors does not promise alignment; ops read whole elements, so keep an aligned copy.
    realigned_.emplace_back(new unsigned char[bytes]);
    std::memcpy(realigned_.back().get(), data, bytes);
    data = realigned_.back().get();
  }
  weights_.bytes += bytes;
  const bool vector = t.shape.size() == 1;
  return Weight{dtype, data, vector ? 1 : static_cast<int>(t.shape[0]), static_cast<int>(t.shape.back())};
}

WeightStore::WeightStore(const ModelSpec& spec) {
  const ModelArch& a = spec.arch;
  std::map<std::string, const TensorSpec*> by_name;
  for (const TensorSpec& t : spec.tensors) by_name[t.name] = &t;
  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::runtime_error("tensor \"" + name + "\" is missing from the model spec");
    return view(*it->second, shape);
  };
  const int64_t d = a.hidden_size, f = a.intermediate_size, vocab = a.vocab_size;
  const int64_t q_dim = static_cast<int64_t>(a.num_heads) * a.head_dim, kv_dim = static_cast<int64_t>(a.num_kv_heads) * a.head_dim;

  weights_.embed = get("model.embed_tokens.weight", {vocab, d});
  for (int l = 0; l < a.num_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.attn_norm = get(p + "input_layernorm.weight", {d});
    w.q = get(p + "self_attn.q_proj.weight", {q_dim, d});
    w.k = get(p + "self_attn.k_proj.weight", {kv_dim, d});
    w.v = get(p + "self_attn.v_proj.weight", {kv_dim, d});
    if (a.attention_bias) {
      w.q_bias = get(p + "self_attn.q_proj.bias", {q_dim});
      w.k_bias = get(p + "self_attn.k_proj.bias", {kv_dim});
      w.v_bias = get(p + "self_attn.v_proj.bias", {kv_dim});
    }
    w.o = get(p + "self_attn.o_proj.weight", {d, q_dim});
    w.ffn_norm = get(p + "post_attention_layernorm.weight", {d});
    w.gate = get(p + "mlp.gate_proj.weight", {f, d});
    w.up = get(p + "mlp.up_proj.weight", {f, d});
    w.down = get(p + "mlp.down_proj.weight", {d, f});
    weights_.layers.push_back(w);
  }
  weights_.norm = get("model.norm.weight", {d});
  weights_.lm_head = a.tie_embeddings ? weights_.embed : get("lm_head.weight", {vocab, d});
}

}  // namespace rl
