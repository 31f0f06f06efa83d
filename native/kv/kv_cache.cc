// Paged KV cache (see kv_cache.h). Storage for every physical block of every layer is one
// anonymous mapping reserved up front without committing memory (MAP_NORESERVE): the kernel
// backs a block's pages only when it is first written, so a large block budget costs nothing
// until used, and appending never allocates.
#include "kv/kv_cache.h"

#include "kv/page_populator.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace rl {

namespace {

// Sets a block's key summary to the min/max of its first `fill` keys, in every layer and KV head.
void recompute_summary(KvCache& kv, int block, int fill) {
  const KvCacheShape& shape = kv.shape();
  const int hd = shape.head_dim;
  for (int layer = 0; layer < shape.n_layers; layer++) {
    for (int h = 0; h < shape.n_kv_heads; h++) {
      const float* k = kv.keys(layer, block, h);
      float* mn = const_cast<float*>(kv.key_min(layer, block, h));
      float* mx = const_cast<float*>(kv.key_max(layer, block, h));
      std::copy(k, k + hd, mn);
      std::copy(k, k + hd, mx);
      for (int p = 1; p < fill; p++) {
        for (int d = 0; d < hd; d++) {
          mn[d] = std::min(mn[d], k[p * hd + d]);
          mx[d] = std::max(mx[d], k[p * hd + d]);
        }
      }
    }
  }
}

}  // namespace

struct KvCache::Impl {
  struct Sequence {
    std::vector<int> blocks;  // logical -> physical
    int length = 0;           // committed positions
    int reserved = 0;         // positions made writable beyond length
    bool stale_tail = false;  // truncated inside a shared tail: its summary may cover more positions
  };

  size_t head_floats;   // block_size * head_dim
  size_t block_floats;  // n_kv_heads * head_floats (keys, or values, of one block of one layer)
  size_t layer_floats;  // n_blocks * block_floats
  float* keys = nullptr;      // [n_layers][n_blocks][n_kv_heads][block_size][head_dim]
  float* values = nullptr;    // same
  float* summary = nullptr;   // [n_layers][n_blocks][n_kv_heads][2][head_dim]: min then max
  size_t mapped_bytes = 0;
  void* mapping = nullptr;
  std::unique_ptr<PagePopulator> populator = std::make_unique<PagePopulator>();  // stopped before munmap

  std::vector<int> refcount;   // per physical block
  std::vector<uint64_t> version;  // per physical block, bumped on every change of its keys/values
  uint64_t changes = 0;           // bumped with every version
  std::vector<int> free_list;  // physical blocks with refcount 0
  std::unordered_map<int, Sequence> sequences;
  int next_id = 0;

  // A private copy of a shared physical block's keys and values in every layer (its summary is
  // the caller's to set); the original loses one reference.
  int copy_block(int old_block, int n_layers) {
    const int copy = free_list.back();
    free_list.pop_back();
    refcount[copy] = 1;
    refcount[old_block]--;
    for (int layer = 0; layer < n_layers; layer++) {
      const size_t from = layer * layer_floats + old_block * block_floats;
      const size_t to = layer * layer_floats + copy * block_floats;
      std::memcpy(keys + to, keys + from, block_floats * sizeof(float));
      std::memcpy(values + to, values + from, block_floats * sizeof(float));
    }
    version[copy]++;
    changes++;
    return copy;
  }

  // Commits the pages of blocks[first..] in the background (page_populator.h), in the order a
  // prefill writes them: a stretch of positions through every layer, then the next stretch.
  void populate(const std::vector<int>& blocks, size_t first, const KvCacheShape& shape) {
    constexpr size_t kStretch = 64;  // blocks: about one prefill chunk
    const size_t summary_floats = size_t(shape.n_kv_heads) * 2 * shape.head_dim;  // a block's, in a layer
    for (size_t i = first; i < blocks.size();) {
      size_t j = i + 1;  // blocks[i..j): consecutive physical blocks
      while (j < blocks.size() && j - i < kStretch && blocks[j] == blocks[j - 1] + 1) j++;
      const size_t block = blocks[i], count = j - i;
      for (int layer = 0; layer < shape.n_layers; layer++) {
        const size_t at = layer * layer_floats + block * block_floats;
        populator->populate(keys + at, count * block_floats * sizeof(float));
        populator->populate(values + at, count * block_floats * sizeof(float));
        populator->populate(summary + (size_t(layer) * shape.n_blocks + block) * summary_floats, count * summary_floats * sizeof(float));
      }
      i = j;
    }
  }

  Sequence& seq(int id) {
    auto it = sequences.find(id);
    if (it == sequences.end()) throw std::runtime_error("KV cache: no sequence " + std::to_string(id));
    return it->second;
  }
};

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape), impl_(new Impl) {
  if (shape.n_layers <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0 || shape.block_size <= 0 || shape.n_blocks <= 0) {
    delete impl_;
    throw std::invalid_argument("KV cache: every dimension must be positive");
  }
  Impl& m = *impl_;
  m.head_floats = static_cast<size_t>(shape.block_size) * shape.head_dim;
  m.block_floats = shape.n_kv_heads * m.head_floats;
  m.layer_floats = static_cast<size_t>(shape.n_blocks) * m.block_floats;
  const size_t kv_floats = shape.n_layers * m.layer_floats;
  const size_t summary_floats = static_cast<size_t>(shape.n_layers) * shape.n_blocks * shape.n_kv_heads * 2 * shape.head_dim;
  m.mapped_bytes = (2 * kv_floats + summary_floats) * sizeof(float);
  m.mapping = mmap(nullptr, m.mapped_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m.mapping == MAP_FAILED) {
    const size_t bytes = m.mapped_bytes;
    delete impl_;
    throw std::runtime_error("KV cache: cannot reserve " + std::to_string(bytes >> 20) + " MiB of address space");
  }
  m.keys = static_cast<float*>(m.mapping);
  m.values = m.keys + kv_floats;
  m.summary = m.values + kv_floats;
  m.refcount.assign(shape.n_blocks, 0);
  m.version.assign(shape.n_blocks, 0);
  m.free_list.reserve(shape.n_blocks);
  for (int b = shape.n_blocks - 1; b >= 0; b--) m.free_list.push_back(b);
}

KvCache::~KvCache() {
  impl_->populator.reset();
  munmap(impl_->mapping, impl_->mapped_bytes);
  delete impl_;
}

int KvCache::new_sequence() {
  const int id = impl_->next_id++;
  impl_->sequences[id].blocks.reserve(16);
  return id;
}

int KvCache::fork_sequence(int seq) {
  Impl::Sequence parent = impl_->seq(seq);  // copy: the map may rehash below
  parent.reserved = 0;
  const size_t committed = (parent.length + shape_.block_size - 1) / shape_.block_size;
  parent.blocks.resize(committed);
  for (int b : parent.blocks) impl_->refcount[b]++;
  const int id = impl_->next_id++;
  impl_->sequences[id] = std::move(parent);
  return id;
}

void KvCache::free_sequence(int seq) {
  Impl::Sequence& s = impl_->seq(seq);
  for (int b : s.blocks) {
    if (--impl_->refcount[b] == 0) impl_->free_list.push_back(b);
  }
  impl_->sequences.erase(seq);
}

void KvCache::truncate(int seq, int length) {
  Impl& m = *impl_;
  Impl::Sequence& s = m.seq(seq);
  if (length < 0) throw std::runtime_error("KV cache: cannot truncate to a negative length");
  length = std::min(length, s.length);
  const int bs = shape_.block_size;
  const size_t keep = (length + bs - 1) / bs;
  for (size_t i = keep; i < s.blocks.size(); i++) {
    if (--m.refcount[s.blocks[i]] == 0) m.free_list.push_back(s.blocks[i]);
  }
  s.blocks.resize(keep);
  s.reserved = 0;
  s.length = length;
  // A partly kept tail owned by this sequence alone gets a summary of what it still holds; a
  // shared one is left to its other owners and recomputed by the next reserve().
  s.stale_tail = false;
  if (length % bs != 0) {
    if (m.refcount[s.blocks.back()] == 1) {
      recompute_summary(*this, s.blocks.back(), length % bs);
      m.version[s.blocks.back()]++;
      m.changes++;
    } else {
      s.stale_tail = true;
    }
  }
}

int KvCache::length(int seq) const { return impl_->seq(seq).length; }

void KvCache::reserve(int seq, int n) {
  Impl& m = *impl_;
  Impl::Sequence& s = m.seq(seq);
  if (n < 0) throw std::runtime_error("KV cache: negative reservation");
  const int bs = shape_.block_size;
  const int end = s.length + n;
  const size_t needed_blocks = (end + bs - 1) / bs;
  const size_t committed_blocks = (s.length + bs - 1) / bs;
  // Reserved but unused blocks from an earlier call stay; a shared, partly filled tail is copied.
  const bool copy_tail = n > 0 && s.length % bs != 0 && m.refcount[s.blocks[committed_blocks - 1]] > 1;
  const size_t fresh = needed_blocks > s.blocks.size() ? needed_blocks - s.blocks.size() : 0;
  if (fresh + (copy_tail ? 1 : 0) > m.free_list.size()) {
    throw std::runtime_error("KV cache: out of blocks (" + std::to_string(shape_.n_blocks) + " blocks of " + std::to_string(bs) +
                             " positions in all, " + std::to_string(m.free_list.size()) + " free, " +
                             std::to_string(fresh + (copy_tail ? 1 : 0)) + " needed)");
  }
  if (copy_tail) {
    const int copy = m.copy_block(s.blocks[committed_blocks - 1], shape_.n_layers);
    // The shared block's summary may also cover positions its other owners wrote past ours.
    recompute_summary(*this, copy, s.length % bs);
    s.blocks[committed_blocks - 1] = copy;
  } else if (n > 0 && s.stale_tail) {
    // The other owners let go of the tail before we appended: it is ours, its summary too wide.
    recompute_summary(*this, s.blocks[committed_blocks - 1], s.length % bs);
    m.version[s.blocks[committed_blocks - 1]]++;
    m.changes++;
  }
  if (n > 0) s.stale_tail = false;
  for (size_t i = 0; i < fresh; i++) {
    const int b = m.free_list.back();
    m.free_list.pop_back();
    m.refcount[b] = 1;
    s.blocks.push_back(b);
  }
  m.populate(s.blocks, s.blocks.size() - fresh, shape_);
  s.reserved = std::max(s.reserved, n);
}

void KvCache::write(int seq, int layer, int pos, const float* k, const float* v) {
  note_writes(seq, layer, pos, 1);
  store(seq, layer, pos, 1, k, v);
}

void KvCache::note_writes(int seq, int layer, int pos0, int n) {
  Impl& m = *impl_;
  Impl::Sequence& s = m.seq(seq);
  const int end = s.length + s.reserved;
  if (layer < 0 || layer >= shape_.n_layers || pos0 < 0 || n < 0 || pos0 + n > end) {
    const int at = pos0 >= 0 && pos0 + n > end ? std::max(pos0, end) : pos0;  // the first position outside
    throw std::runtime_error("KV cache: write outside the reserved range (layer " + std::to_string(layer) + ", position " + std::to_string(at) + ")");
  }
  const int bs = shape_.block_size;
  for (int pos = pos0; pos < std::min(pos0 + n, s.length); pos++) {  // overwrites
    if (m.refcount[s.blocks[pos / bs]] > 1) {
      throw std::runtime_error("KV cache: position " + std::to_string(pos) + " lies in a shared block: make_private() before overwriting it");
    }
  }
  for (int pos = pos0; pos < pos0 + n; pos++) m.version[s.blocks[pos / bs]]++;
  m.changes += n;
}

void KvCache::store(int seq, int layer, int pos0, int n, const float* k, const float* v) {
  Impl& m = *impl_;
  const Impl::Sequence& s = m.seq(seq);
  const int bs = shape_.block_size, hd = shape_.head_dim;
  const size_t stride = static_cast<size_t>(shape_.n_kv_heads) * hd;
  for (int t = 0; t < n; t++) {
    const int pos = pos0 + t, block = s.blocks[pos / bs], slot = pos % bs;
    const bool overwrite = pos < s.length;
    const float* kt = k + t * stride;  // [n_kv_heads][head_dim]
    const float* vt = v + t * stride;
    for (int h = 0; h < shape_.n_kv_heads; h++) {
      const float* kh = kt + h * hd;
      float* kd = const_cast<float*>(keys(layer, block, h)) + slot * hd;
      float* vd = const_cast<float*>(values(layer, block, h)) + slot * hd;
      std::memcpy(kd, kh, hd * sizeof(float));
      std::memcpy(vd, vt + h * hd, hd * sizeof(float));
      float* mn = const_cast<float*>(key_min(layer, block, h));
      float* mx = const_cast<float*>(key_max(layer, block, h));
      if (slot == 0 && !overwrite) {
        std::memcpy(mn, kh, hd * sizeof(float));
        std::memcpy(mx, kh, hd * sizeof(float));
      } else {
        for (int d = 0; d < hd; d++) {
          mn[d] = std::min(mn[d], kh[d]);
          mx[d] = std::max(mx[d], kh[d]);
        }
      }
    }
  }
}

void KvCache::make_private(int seq, int from, int to) {
  Impl& m = *impl_;
  Impl::Sequence& s = m.seq(seq);
  if (from < 0 || to > s.length || from > to) {
    throw std::runtime_error("KV cache: positions " + std::to_string(from) + ".." + std::to_string(to) + " are not inside the sequence (length " + std::to_string(s.length) + ")");
  }
  if (from == to) return;
  const int bs = shape_.block_size;
  const int first = from / bs, last = (to - 1) / bs;
  int shared = 0;
  for (int lb = first; lb <= last; lb++) shared += m.refcount[s.blocks[lb]] > 1;
  if (shared > static_cast<int>(m.free_list.size())) {
    throw std::runtime_error("KV cache: out of blocks (" + std::to_string(m.free_list.size()) + " free, " + std::to_string(shared) + " needed to copy shared blocks)");
  }
  for (int lb = first; lb <= last; lb++) {
    if (m.refcount[s.blocks[lb]] == 1) continue;
    s.blocks[lb] = m.copy_block(s.blocks[lb], shape_.n_layers);
    recompute_summary(*this, s.blocks[lb], block_fill(seq, lb));
  }
}

void KvCache::refresh_summaries(int seq, int from, int to) {
  const Impl::Sequence& s = impl_->seq(seq);
  if (from < 0 || to > s.length || from >= to) return;
  const int bs = shape_.block_size;
  for (int lb = from / bs; lb <= (to - 1) / bs; lb++) {
    if (impl_->refcount[s.blocks[lb]] == 1) {
      recompute_summary(*this, s.blocks[lb], block_fill(seq, lb));
      impl_->version[s.blocks[lb]]++;
      impl_->changes++;
    }
  }
}

void KvCache::commit(int seq, int n) {
  Impl::Sequence& s = impl_->seq(seq);
  if (n < 0 || n > s.reserved) throw std::runtime_error("KV cache: commit beyond the reserved range");
  s.length += n;
  s.reserved = 0;
}

const std::vector<int>& KvCache::blocks(int seq) const { return impl_->seq(seq).blocks; }

int KvCache::block_fill(int seq, int logical_block) const {
  const Impl::Sequence& s = impl_->seq(seq);
  return std::clamp(s.length - logical_block * shape_.block_size, 0, shape_.block_size);
}

const float* KvCache::keys(int layer, int block, int kv_head) const {
  return impl_->keys + layer * impl_->layer_floats + block * impl_->block_floats + kv_head * impl_->head_floats;
}

const float* KvCache::values(int layer, int block, int kv_head) const {
  return impl_->values + layer * impl_->layer_floats + block * impl_->block_floats + kv_head * impl_->head_floats;
}

const float* KvCache::key_min(int layer, int block, int kv_head) const {
  const size_t index = (static_cast<size_t>(layer) * shape_.n_blocks + block) * shape_.n_kv_heads + kv_head;
  return impl_->summary + index * 2 * shape_.head_dim;
}

const float* KvCache::key_max(int layer, int block, int kv_head) const { return key_min(layer, block, kv_head) + shape_.head_dim; }

uint64_t KvCache::block_version(int block) const { return impl_->version.at(block); }

uint64_t KvCache::changes() const { return impl_->changes; }

int KvCache::blocks_in_use() const { return shape_.n_blocks - static_cast<int>(impl_->free_list.size()); }

}  // namespace rl
