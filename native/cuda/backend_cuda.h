// The CUDA backend: rl::Backend (backend.h) on GPU 0 with the ops of this folder. Plain C++ so
// addon.cc (compiled without nvcc) can include it.
//
// Weights are uploaded once, on first use, in their stored dtype (keyed by Weight::data);
// activations are float32 device arrays from alloc(). The KV cache keeps the host KvCache as the
// truth (block tables, ids, forks, kv_io) and mirrors its float32 block storage on the device:
// kv_write appends on the device (kv_append) and writes the same keys and values through to the
// host cache, deferred (pinned staging, written into the host cache at kv_flush or when a staging
// is reused); attention first re-uploads any block of the sequence whose KvCache::block_version
// the mirror has not seen (a copy-on-write copy, a kv_import), then runs dense_attention. Sparse
// decode attention (block_attention): the host's prhs policy selects from the written-through host
// cache; chosen_attention attends the chosen blocks of the mirror.
#pragma once
#include <memory>

#include "backend.h"

namespace rl::cuda {

// Throws std::runtime_error naming the CUDA error when GPU 0 cannot be used.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace rl::cuda
