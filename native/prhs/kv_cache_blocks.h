// LayerBlocks over the paged KV cache: one layer of one sequence, up to `context` positions.
#pragma once
#include "kv/kv_cache.h"
#include "prhs/layer_blocks.h"

namespace rl::prhs {

class KvCacheBlocks : public LayerBlocks {
 public:
  KvCacheBlocks(const KvCache& kv, int seq, int layer, int context)
      : kv_(kv), table_(kv.blocks(seq)), layer_(layer), context_(context) {}
  int n_kv_heads() const override { return kv_.shape().n_kv_heads; }
  int head_dim() const override { return kv_.shape().head_dim; }
  int block_size() const override { return kv_.shape().block_size; }
  int context() const override { return context_; }
  long storage_id(int b) const override { return table_[b]; }
  const float* keys(int b, int h) const override { return kv_.keys(layer_, table_[b], h); }
  const float* values(int b, int h) const override { return kv_.values(layer_, table_[b], h); }
  const float* key_min(int b, int h) const override { return kv_.key_min(layer_, table_[b], h); }
  const float* key_max(int b, int h) const override { return kv_.key_max(layer_, table_[b], h); }

 private:
  const KvCache& kv_;
  const std::vector<int>& table_;
  int layer_;
  int context_;
};

}  // namespace rl::prhs
