// The selection trace: for every generated token, every layer and every KV head, which KV blocks
// were attended, whether the set was scored, reused or shared, and the certified dropped mass δ̂.
// A block manifest maps each prompt block to the files and line ranges its tokens came from.
// Format documented in docs/trace.md; schema in schema.ts; version bumps on any breaking change.
import type { AttentionSettings } from './attention';

export const TRACE_FORMAT = 'repo-lens-selection-trace';
export const TRACE_VERSION = 1;

/** Half-open ranges [start, end) of logical block ids, sorted and disjoint: the compact set form. */
export type BlockRanges = [number, number][];

/** Where a KV head's selection came from at this step.
 *  scored: blocks were scored this step (PrHS anchor, Quest, oracle);
 *  reused: the anchor's set was reused (time axis, cosine gate passed);
 *  shared: taken from the group's first layer (layer axis);
 *  fixed: sinks + window only (StreamingLLM); dense: every block. */
export type SelectionSource = 'scored' | 'reused' | 'shared' | 'fixed' | 'dense';

export interface HeadSelection {
  kvHead: number;
  /** Blocks attended, after any expansion. */
  blocks: BlockRanges;
  source: SelectionSource;
  /** Certified upper bound on the dropped attention mass (max over the KV head's query heads);
   *  null when this step was not certified. 0 when nothing was dropped. */
  deltaHat: number | null;
  /** Exact dropped mass (audit mode only), else null. */
  delta: number | null;
  /** Blocks added because δ̂ exceeded the target. */
  expanded: number;
}

export interface LayerSelection {
  layer: number;
  heads: HeadSelection[];
}

export interface TraceStep {
  /** 0 for the first generated token. */
  step: number;
  /** Position in the sequence of the token whose query attended (the token fed in). */
  position: number;
  /** The token generated from this step's logits, and its text. */
  tokenId: number;
  text: string;
  /** KV blocks in the sequence at this step (prompt blocks first, then generated ones). */
  contextBlocks: number;
  layers: LayerSelection[];
}

/** A run of a block's tokens that came from one source (a file, or a named prompt part). */
export interface BlockSpan {
  /** Repository-relative path with '/' separators, or a prompt part in angle brackets
   *  such as "<instructions>" or "<question>". */
  source: string;
  /** 1-based, inclusive line range inside the source. */
  startLine: number;
  endLine: number;
  /** Token positions [tokenStart, tokenEnd) of the span in the sequence. */
  tokenStart: number;
  tokenEnd: number;
}

export interface ManifestBlock {
  block: number;
  tokenStart: number;
  tokenEnd: number;
  spans: BlockSpan[];
}

export interface TraceModel {
  name: string;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

export interface TraceSummary {
  steps: number;
  /** KV entries read ÷ (context length × layers × KV heads), averaged over steps. */
  effectiveBudget: number;
  /** Block-scoring passes over a (layer, KV head) per generated token. */
  scoringPassesPerToken: number;
  /** Certificate passes on reuse/shared steps (bounds computed without scoring) per token. */
  certifyPassesPerToken: number;
  meanDeltaHat: number | null;
  maxDeltaHat: number | null;
  meanDelta: number | null;
  maxDelta: number | null;
  /** Fraction of certified (layer, KV head, step) selections that were expanded. */
  expansionRate: number;
}

export interface SelectionTrace {
  format: typeof TRACE_FORMAT;
  version: typeof TRACE_VERSION;
  createdAt: string;
  model: TraceModel;
  kvBlockSize: number;
  attention: AttentionSettings;
  promptTokens: number;
  /** One entry per prompt block, in order, covering tokens [0, promptTokens). */
  manifest: ManifestBlock[];
  steps: TraceStep[];
  summary: TraceSummary;
}
