// What decode attention sees of one layer of a sequence: its KV blocks, per KV head, with their
// key summaries. An interface so that the selectors run on the paged KV cache (kv_cache_blocks.h)
// and on synthetic keys in tests alike.
#pragma once

namespace rl::prhs {

class LayerBlocks {
 public:
  virtual ~LayerBlocks() = default;
  virtual int n_kv_heads() const = 0;
  virtual int head_dim() const = 0;
  virtual int block_size() const = 0;
  // Positions in the sequence (the last one is the token whose query attends).
  virtual int context() const = 0;
  int n_blocks() const { return (context() + block_size() - 1) / block_size(); }
  int fill(int b) const { int rest = context() - b * block_size(); return rest < block_size() ? rest : block_size(); }
  // An id for block b's storage, stable while the sequence only grows (keys of full blocks do
  // not change then): the key of cached per-block data such as low-bit key copies.
  virtual long storage_id(int b) const = 0;
  virtual const float* keys(int b, int kv_head) const = 0;     // [fill][head_dim]
  virtual const float* values(int b, int kv_head) const = 0;   // [fill][head_dim]
  virtual const float* key_min(int b, int kv_head) const = 0;  // [head_dim]
  virtual const float* key_max(int b, int kv_head) const = 0;  // [head_dim]
};

}  // namespace rl::prhs
