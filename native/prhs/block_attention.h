// Where sparse decode attention's chosen blocks are attended. The selection (and its certificate)
// always decides on the host (decode_attention.h); the attention over the chosen blocks runs where the
// backend keeps q, out and the KV: the host accumulators for the CPU (decode_attention.cc), the
// CUDA backend's own on the GPU (cuda/block_attention_cuda.cu, through Backend::block_attention).
// A backend may also compute the per-block bounds the selection ranks and certifies with
// (BlockBounds), next to the keys and their summaries: the host then reads back scores and sums,
// not every summary.
#pragma once
#include <memory>
#include <vector>

namespace rl::prhs {

class HeadAttention {
 public:
  virtual ~HeadAttention() = default;
  // Adds logical block b of the layer for every query head of the KV head's group.
  virtual void add_block(int b) = 0;
  // A hint: attend the blocks added so far now (a device backend launches that work at once).
  virtual void start() {}
  // Query head g of the group: log-sum-exp of its scaled scores over the blocks added so far.
  virtual double lse(int g) = 0;
  // A hint that lse() follows (with no block added in between): a device backend starts the work
  // and its copy back, so that the KV heads of a layer wait for the device once, not once each.
  virtual void prefetch_lse() {}
  // Writes the group's outputs [group][head_dim]: the softmax over exactly the blocks added (a device
  // backend may launch that at BlockAttention::finish(), with the other KV heads').
  virtual void write() = 0;
};

// The per-block log-mass bounds of one KV head for its group's query heads, kept where they are
// computed in two tables (0, 1) of [group][n_blocks]. The arithmetic is the host's (block_bounds.h,
// key_sketch.h); only the order of the sums over blocks (lse, scores) may differ.
class BlockBounds {
 public:
  virtual ~BlockBounds() = default;
  // table[g][b] for every block b with mask[b], per query head g:
  //   bits 0:   minmax_log_bound(q_g, key_min, key_max, fill, head_dim)
  //   bits 4/8: sketch_log_bound(q_g, build_sketch(keys, key_min, key_max, fill, head_dim, bits), key_min, key_max)
  virtual void bound(int table, const std::vector<char>& mask, int bits) = 0;
  // lse[g] = log Σ_{b: mask[b]} exp(table[g][b]) (-inf for no block), [group].
  virtual void lse(int table, const std::vector<char>& mask, double* lse) = 0;
  // selection.h's block_scores of the table over the mask's blocks, [n_blocks] (0 elsewhere).
  virtual void scores(int table, const std::vector<char>& mask, double* score) = 0;
  // The table, [group][n_blocks] (blocks never bounded: unspecified).
  virtual void read(int table, double* log_mass) = 0;
  // The exact log-mass of each listed block for each query head of the group, out [blocks.size()][group]:
  // block_bounds.h's exact_log_mass (the scores q·k in double in the host's order; the log-sum-exp
  // over the block's positions within an ulp or two of the host's chain of log_add). The certificate's
  // expansion asks for the blocks it may add next, in one call, instead of the selected mass after
  // each block. False (the default): not offered; the expansion then reads HeadAttention::lse.
  virtual bool masses(const std::vector<int>& blocks, double* out) { (void)blocks, (void)out; return false; }
  // Hints that lse() / scores() with these arguments follow (with nothing else in between): the
  // backend may start the work and its copy back, as HeadAttention::prefetch_lse.
  virtual void prefetch_lse(int table, const std::vector<char>& mask) { (void)table, (void)mask; }
  virtual void prefetch_scores(int table, const std::vector<char>& mask) { (void)table, (void)mask; }
};

class BlockAttention {
 public:
  virtual ~BlockAttention() = default;
  // The attention of KV head `kv_head`'s query heads; q_scaled [group][head_dim] is the host's copy
  // of their queries times 1/sqrt(head_dim) (valid while the returned object lives).
  virtual std::unique_ptr<HeadAttention> head(int kv_head, const double* q_scaled) = 0;
  // The bounds of KV head `kv_head`'s blocks for the same queries, where the backend computes
  // them; null (the default): the host computes them from its cache.
  virtual std::unique_ptr<BlockBounds> bounds(int kv_head, const double* q_scaled) {
    (void)kv_head, (void)q_scaled;
    return nullptr;
  }
  // A hint after heads were started (HeadAttention::start): a device backend may launch their work
  // together, in one launch for all the layer's KV heads.
  virtual void launch() {}
  // The end of the layer's selection: every output written (HeadAttention::write) is launched by now.
  virtual void finish() {}
  // Writes the outputs of the heads started so far, one for every KV head of the layer, now: before
  // the host has q and has confirmed the selection, so that the caller may go on from them
  // meanwhile (DecodeAttention::expects_prepared). False (the default): not offered, nothing written.
  virtual bool write_early() { return false; }
  // After finish(): whether the outputs written early are the layer's outputs (the selection took
  // every KV head's started attention as it was). Else finish() wrote them anew, and the caller
  // redoes what it computed from the early ones.
  virtual bool early_write_stands() const { return false; }
  // Whether head() may be called before the host has q, with q_scaled null (the attention reads q
  // where the backend keeps it): DecodeAttention::prepare then starts the selections it can make
  // without q while q is on its way to the host.
  virtual bool attends_early() const { return false; }
  // Whether bounds() may be called before the host has q, with q_scaled null (the backend scales its
  // own copy of q): DecodeAttention::prepare then starts the scores of a selection that will score.
  virtual bool bounds_early() const { return false; }
  // Whether bounds() gives the backend's bounds (not null) for every KV head: the selection then
  // reads no key summary and no key of the host cache (DecodeAttention::reads_host_keys).
  virtual bool offers_bounds() const { return false; }
  // The host's copy of the layer's queries [n_heads][head_dim] where the backend fetches it itself
  // (a device backend starts that copy when it makes this object, ahead of whatever the caller waits
  // for next), valid while this object lives; null (the default): the caller copies q to the host.
  virtual const float* host_query() { return nullptr; }
  // Whether this object itself reads the host KV cache of the step (keys, values or summaries of the
  // token being decoded): a device backend's does not, so the caller need not complete the step's
  // write-through to the host before the selection where the selection reads none either.
  virtual bool reads_host_cache() const { return true; }
};

}  // namespace rl::prhs
