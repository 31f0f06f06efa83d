// Paged KV cache: fixed-size blocks of positions, per layer and KV head, each with a key summary.
//
// A physical block holds `block_size` positions of one layer for all KV heads:
//   keys   [n_kv_heads][block_size][head_dim]
//   values [n_kv_heads][block_size][head_dim]
//   key_min, key_max [n_kv_heads][head_dim]   element-wise min/max over the keys written so far
// A sequence is a block table: logical block i (positions i*block_size ..) -> physical block id,
// the same id in every layer. Blocks are reference-counted so sequences can share a prefix
// copy-on-write (fork); the block is the unit of PrHS selection, of the trace and of the manifest.
#pragma once
#include <cstdint>
#include <vector>

namespace rl {

struct KvCacheShape {
  int n_layers;
  int n_kv_heads;
  int head_dim;
  int block_size;
  int n_blocks;  // physical blocks available (per layer)
};

class KvCache {
 public:
  explicit KvCache(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }

  int new_sequence();
  int fork_sequence(int seq);  // shares every block; the next append copies a shared tail block
  void free_sequence(int seq);
  void truncate(int seq, int length);
  int length(int seq) const;

  // Makes positions [length, length + n) writable for `seq` in every layer: allocates blocks and
  // copies a shared tail block (copy-on-write). Throws std::runtime_error when out of blocks.
  void reserve(int seq, int n);
  // Writes one position's keys and values [n_kv_heads][head_dim] for one layer and updates the
  // block's key summary. `pos` must lie in a reserved range, or be a committed position of a block
  // this sequence owns alone (an overwrite, see make_private: the summary then only widens, and
  // refresh_summaries makes it exact again).
  void write(int seq, int layer, int pos, const float* k, const float* v);
  // write() for positions [pos0, pos0 + n) of one layer in two parts, for a backend that stores on
  // a thread of its own (cuda/backend_cuda.cu): note_writes() checks the range and changes the
  // blocks' versions as n write() calls would (it throws as write() does, nothing changed);
  // store() then copies keys and values [n][n_kv_heads][head_dim] and updates the summaries.
  // Between the two the blocks' contents lag their versions: nothing may read those blocks, and no
  // call but store() may change the cache.
  void note_writes(int seq, int layer, int pos0, int n);
  void store(int seq, int layer, int pos0, int n, const float* k, const float* v);
  // Gives `seq` its own copy of every shared block holding positions [from, to), so that those
  // committed positions can be overwritten (model/segments.cc recomputes them in place).
  // Throws std::runtime_error, the sequence unchanged, when out of blocks.
  void make_private(int seq, int from, int to);
  // Sets the key summaries of the blocks holding positions [from, to) of `seq` to the exact
  // min/max of the keys they hold (after overwrites).
  void refresh_summaries(int seq, int from, int to);
  // Makes the reserved positions part of the sequence (after every layer has written them).
  void commit(int seq, int n);

  // The sequence's block table (logical -> physical).
  const std::vector<int>& blocks(int seq) const;
  // Positions written into a physical block of this sequence (block_size except for the tail).
  int block_fill(int seq, int logical_block) const;

  const float* keys(int layer, int block, int kv_head) const;    // [block_size][head_dim]
  const float* values(int layer, int block, int kv_head) const;  // [block_size][head_dim]
  const float* key_min(int layer, int block, int kv_head) const; // [head_dim]
  const float* key_max(int layer, int block, int kv_head) const; // [head_dim]

  int blocks_in_use() const;

  // Changes whenever a physical block's keys, values or key summary change (write, copy-on-write
  // copy, a summary recomputed by truncate, reserve or refresh_summaries): a device backend
  // mirroring the blocks and their summaries (cuda/) re-uploads a block whose version it has not seen.
  uint64_t block_version(int block) const;
  // Counts every block_version change: while it stands still, no block changed (a mirror may skip
  // comparing every block's version).
  uint64_t changes() const;

 private:
  KvCacheShape shape_;
  // Implementation detail chosen in kv_cache.cc.
  struct Impl;
  Impl* impl_;

 public:
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
};

}  // namespace rl
