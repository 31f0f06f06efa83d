// Copies a sequence's keys and values out of the paged KV cache and back in, so a prefix can be
// kept on disk (src/cache/) and restored in a later process without running the model again.
//
// A span of `count` positions is laid out as float32
//   [n_layers][2: keys, values][count][n_kv_heads][head_dim]
// (the layout the forward pass writes a chunk in), independent of block size and placement.
// Importing writes through KvCache::write, so block key summaries are rebuilt exactly as a
// prefill builds them, and the restored sequence is bit-for-bit the one that was exported.
#pragma once
#include <cstddef>

#include "kv/kv_cache.h"

namespace rl {

// Floats in a span of `count` positions.
size_t kv_span_floats(const KvCacheShape& shape, int count);

// Writes positions [start, start + count) of `seq` to out[kv_span_floats(count)].
// Throws std::runtime_error when the range is not inside the sequence.
void kv_export(const KvCache& kv, int seq, int start, int count, float* out);

// Appends `count` positions read from in[kv_span_floats(count)] to `seq`.
// Throws std::runtime_error (sequence unchanged) when the cache is out of blocks.
void kv_import(KvCache& kv, int seq, int count, const float* in);

}  // namespace rl
