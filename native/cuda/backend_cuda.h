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
#include <string>

#include "backend.h"
#include "prefill_precision.cuh"

namespace rl::cuda {

// Throws std::runtime_error naming the CUDA error when GPU 0 cannot be used. `prefill`: how prefill
// chunks' products and attention use the tensor cores (prefill_precision.cuh); decode steps always
// keep float32-level accuracy.
std::unique_ptr<Backend> make_cuda_backend(PrefillPrecision prefill = PrefillPrecision::Float32);

// REPO_LENS_CUDA_TIMING=1: a JSON object of the host's time in the sparse decode policy since the
// last call (decode steps, layers, attend_ms; per kind of wait for the device [count, ms]; sums and
// per-step means), and the sums reset; "" when the variable is not 1.
std::string take_policy_timing();

}  // namespace rl::cuda
