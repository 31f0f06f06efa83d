// PrHS decode-attention settings: the selector (PrHS or a baseline) and its parameters. Mirrors
// src/trace/attention.ts (AttentionSettings), where each field and its default is documented.
#pragma once

namespace rl::prhs {

enum class Mode { Dense, Prhs, Quest, Oracle, Streaming };
// How unselected blocks' scores are bounded: per-dimension key min/max of the block, or a
// low-bit copy of its keys (per-dimension scales from min/max, rounding error bounded exactly).
enum class KeyBound { MinMax, Int8, Int4 };

struct Params {
  Mode mode = Mode::Dense;
  double budget = 0.25;     // fraction of the context each KV head may read per step
  int budget_tokens = 0;    // overrides budget when > 0
  int sinks = 4;            // always-kept first tokens
  int window = 64;          // always-kept most recent tokens
  double tau = 0.8;         // CIS cosine gate
  int max_reuse = 16;       // CIS: steps an anchor's set may serve
  int dilation = 1;         // CIS: ±r neighbours around the anchor's top-m blocks
  int dilate_top = 0;       // m; 0: a third of the budget's free blocks
  int layer_group = 1;      // cross-layer sharing group size; 1: off
  bool depth_schedule = false;
  int depth_start_layer = -1;  // l_s; -1: half the layers
  double depth_phi = 0.5;
  double depth_alpha = 1.0;
  double delta_target = 0.05;
  int certify_every = 8;    // audit schedule: certify every this many steps (0: anchors only)
  bool strict = false;      // certify every step
  bool audit = false;       // also compute the exact dropped mass
  KeyBound key_bound = KeyBound::Int8;
};

}  // namespace rl::prhs
