// Sparse decode attention: for the newest token of a sequence, per layer and KV head, choose KV
// blocks (PrHS or a baseline), attend over them, certify the dropped mass and expand the set
// while the certificate exceeds the target, and record what was done for the selection trace.
//
// PrHS, per (layer, KV head):
//   - time (CIS): an anchor step scores all candidate blocks from their key summaries and keeps
//     a core (top-m dilated by ±r, filled to the budget) beside its sinks and window; later
//     steps reuse that set plus the current window while cos(q, q_anchor) >= tau and fewer than
//     max_reuse steps have passed (so a reused set may exceed the budget by the blocks the
//     window entered since the anchor; the effective budget counts them);
//   - layer: in groups of layer_group adjacent layers, a layer takes its group's first layer's
//     core when that one re-scores, and keeps it under the same gate;
//   - depth: sinks and the recency window always; the depth schedule narrows candidates;
//   - certificate: δ̂ = U/(Z+U) with Z the exact selected mass and U an upper bound on every
//     unselected block's mass, so δ̂ >= δ. On anchor steps (bounds already computed), on every
//     certify_every-th step and on every step in strict mode; blocks with the largest bounds are
//     added until δ̂ <= delta_target, and a reused set that needed that is re-scored next step.
// One object per generation: cached low-bit key copies assume full blocks do not change.
#pragma once
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include "prhs/block_attention.h"
#include "prhs/key_sketch.h"
#include "prhs/layer_blocks.h"
#include "prhs/params.h"

namespace rl::prhs {

enum class Source { Scored, Reused, Shared, Fixed, Dense };

// The trace's name for a selection's source (docs/trace.md).
inline const char* source_name(Source s) {
  switch (s) {
    case Source::Scored: return "scored";
    case Source::Reused: return "reused";
    case Source::Shared: return "shared";
    case Source::Fixed: return "fixed";
    case Source::Dense: return "dense";
  }
  return "dense";
}

// What one KV head of one layer did at the latest step.
struct HeadRecord {
  std::vector<int> blocks;  // ascending
  Source source = Source::Dense;
  double delta_hat = -1;    // certified bound (max over the head's query heads); -1: not certified
  double delta = -1;        // exact dropped mass (audit); -1: not audited
  int expanded = 0;         // blocks added by the certificate
  long entries_read = 0;    // KV positions read
  // The closest call among the head's decisions this step (the reuse gate, the ranking, the
  // expansion's stop, worst head and picks), as a relative gap between the values compared: inputs
  // that differ by about this much (another backend's float rounding) may decide otherwise.
  // Infinity: no such decision was taken.
  double margin = std::numeric_limits<double>::infinity();
};

struct Counters {
  long steps = 0;
  long selections = 0;       // (layer, KV head) selections made
  long scoring_passes = 0;   // selections that scored blocks
  long certify_passes = 0;   // certificates on selections that did not score
  long certified = 0;
  long expanded = 0;         // certified selections that needed expansion
  long entries_read = 0;     // KV positions read, summed over selections
  long entries_context = 0;  // context positions, summed over selections
  long summary_bytes = 0;    // key-summary / key-copy bytes read for scoring and certificates
};

class DecodeAttention {
 public:
  DecodeAttention(const Params& p, int n_layers, int n_heads, int n_kv_heads, int head_dim);

  // Attention of the last position of `kv` (one layer): q, out [n_heads][head_dim], q after RoPE.
  // Call for layers 0..n_layers-1 in order once per generated token; layer 0 starts a step.
  void attend(int layer, const float* q, const LayerBlocks& kv, float* out);
  // The same selection, the chosen blocks attended by `where` (q is still the host's copy), and
  // the blocks' bounds computed by `where` where it offers them (BlockAttention::bounds; the host
  // decides from the scores and sums it returns: same selections up to the order of those sums).
  // The layer's KV heads go through the selection side by side (decode_attention.cc), so that such
  // a backend waits for the device once per phase of the layer, not once per KV head.
  void attend(int layer, const float* q, const LayerBlocks& kv, BlockAttention& where);

  // Before attend() of the same layer, while the host does not yet have q (a device backend copies it
  // meanwhile): where `where` attends early (BlockAttention::attends_early), starts the attention of
  // the selections attend() can take without q if the reuse gate admits them: a set reused from its
  // anchor (or shared from this step's leader layer) with the current sinks and window, the dense and
  // the streaming masks; where it bounds early (BlockAttention::bounds_early), the candidates' bounds
  // and scores of a selection that scores whatever q is (Quest; PrHS with no anchor it may reuse).
  // attend() takes a started head whose blocks are exactly the ones it selects, started scores whose
  // candidates are exactly its own, and drops the others. Records, counters, anchors and outputs do
  // not depend on whether it ran.
  void prepare(int layer, const LayerBlocks& kv, BlockAttention& where);
  // After prepare(): whether attend() of that layer will take every KV head's started attention as
  // it is, as far as is known without q: fixed masks, and PrHS sets reused from an anchor or shared
  // from the leader on a step that does not certify (the reuse gate, which needs q, may still turn
  // a head to scoring). The caller may then go on from outputs written early
  // (BlockAttention::write_early) and redo that work where attend() decided otherwise.
  bool expects_prepared() const;
  // After attend(): whether every KV head took prepare()'s attention and added no block to it.
  bool took_prepared() const { return took_prepared_; }
  // Drops what prepare() started (before `where` goes away when attend() was not reached or threw).
  void discard_prepared() { started_ = Started{}; }

  // Whether attend() reads keys or key summaries of the host's LayerBlocks (where the backend
  // computes the bounds, `device_bounds`: only for audits and the oracle's exact scores). Where it
  // does not, a device backend need not write the step's keys through to the host first.
  bool reads_host_keys(bool device_bounds) const {
    if (p_.audit || p_.mode == Mode::Oracle) return true;
    return (p_.mode == Mode::Quest || p_.mode == Mode::Prhs) && !device_bounds;
  }

  int step() const { return step_; }
  // The latest step's records, [layer][kv_head] flattened.
  const std::vector<HeadRecord>& records() const { return records_; }
  const Counters& counters() const { return counters_; }
  const Params& params() const { return p_; }

 private:
  struct Anchor {
    bool valid = false;
    int step = 0;
    std::vector<double> q;  // [group][head_dim] the anchor's query
    std::vector<int> core;
    bool from_leader = false;
    int scored_at = -1;
  };

  Source choose_prhs(int layer, int kv_head, const std::vector<double>& q, Anchor& a, HeadRecord& rec);
  const KeySketch& sketch(int layer, int kv_head, int block, const LayerBlocks& kv);

  Params p_;
  int n_layers_, n_heads_, n_kv_heads_, head_dim_, group_;
  int step_ = -1;
  std::vector<Anchor> anchors_;      // [layer][kv_head]
  std::vector<HeadRecord> records_;  // [layer][kv_head]
  Counters counters_;
  bool took_prepared_ = false;
  std::unordered_map<long, KeySketch> sketches_;
  struct Started {  // what prepare() started: per KV head, the blocks and their attention (or null)
    int layer = -1, step = -1;
    std::vector<std::vector<char>> sel;
    std::vector<std::unique_ptr<HeadAttention>> acc;
    std::vector<std::vector<char>> candidate;  // scores started: the candidates bounded (table 0)
    std::vector<std::unique_ptr<BlockBounds>> bounds;
  };
  Started started_;
};

}  // namespace rl::prhs
