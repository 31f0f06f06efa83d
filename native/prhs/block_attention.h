// Where sparse decode attention's chosen blocks are attended. The selection (and its certificate)
// always runs on the host (decode_attention.h); the attention over the chosen blocks runs where the
// backend keeps q, out and the KV: the host accumulators for the CPU (decode_attention.cc), the
// CUDA backend's own on the GPU (cuda/backend_cuda.cu, through Backend::block_attention).
#pragma once
#include <memory>

namespace rl::prhs {

class HeadAttention {
 public:
  virtual ~HeadAttention() = default;
  // Adds logical block b of the layer for every query head of the KV head's group.
  virtual void add_block(int b) = 0;
  // Query head g of the group: log-sum-exp of its scaled scores over the blocks added so far.
  virtual double lse(int g) = 0;
  // Writes the group's outputs [group][head_dim]: the softmax over exactly the blocks added.
  virtual void write() = 0;
};

class BlockAttention {
 public:
  virtual ~BlockAttention() = default;
  // The attention of KV head `kv_head`'s query heads; q_scaled [group][head_dim] is the host's copy
  // of their queries times 1/sqrt(head_dim) (valid while the returned object lives).
  virtual std::unique_ptr<HeadAttention> head(int kv_head, const double* q_scaled) = 0;
};

}  // namespace rl::prhs
