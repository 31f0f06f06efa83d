// Export and import of a sequence's KV span (see kv_io.h).
#include "kv/kv_io.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace rl {

size_t kv_span_floats(const KvCacheShape& shape, int count) {
  return static_cast<size_t>(shape.n_layers) * 2 * count * shape.n_kv_heads * shape.head_dim;
}

void kv_export(const KvCache& kv, int seq, int start, int count, float* out) {
  const KvCacheShape& shape = kv.shape();
  const int length = kv.length(seq);
  if (start < 0 || count < 0 || start + count > length) {
    throw std::runtime_error("KV export: positions " + std::to_string(start) + ".." + std::to_string(start + count) +
                             " are not inside the sequence (length " + std::to_string(length) + ")");
  }
  const std::vector<int>& table = kv.blocks(seq);
  const int bs = shape.block_size, hd = shape.head_dim, heads = shape.n_kv_heads;
  const size_t position_floats = static_cast<size_t>(heads) * hd;  // one position: [n_kv_heads][head_dim]
  for (int layer = 0; layer < shape.n_layers; layer++) {
    float* keys = out + static_cast<size_t>(layer) * 2 * count * position_floats;  // [count][n_kv_heads][head_dim]
    float* values = keys + count * position_floats;                                 // same
    for (int p = 0; p < count; p++) {
      const int pos = start + p, block = table[pos / bs], slot = pos % bs;
      for (int h = 0; h < heads; h++) {
        std::memcpy(keys + p * position_floats + h * hd, kv.keys(layer, block, h) + slot * hd, hd * sizeof(float));
        std::memcpy(values + p * position_floats + h * hd, kv.values(layer, block, h) + slot * hd, hd * sizeof(float));
      }
    }
  }
}

void kv_import(KvCache& kv, int seq, int count, const float* in) {
  const KvCacheShape& shape = kv.shape();
  if (count < 0) throw std::runtime_error("KV import: negative position count");
  const int length = kv.length(seq);
  kv.reserve(seq, count);  // throws, leaving the sequence as it was, when out of blocks
  const size_t position_floats = static_cast<size_t>(shape.n_kv_heads) * shape.head_dim;
  for (int layer = 0; layer < shape.n_layers; layer++) {
    const float* keys = in + static_cast<size_t>(layer) * 2 * count * position_floats;  // [count][n_kv_heads][head_dim]
    const float* values = keys + count * position_floats;
    for (int p = 0; p < count; p++) kv.write(seq, layer, length + p, keys + p * position_floats, values + p * position_floats);
  }
  kv.commit(seq, count);
}

}  // namespace rl
