// The JavaScript face of the native addon (native/addon.cc). Only the engine process loads it;
// the extension host never does, so a fault in native code cannot take the editor down.

import type { AttentionSettings } from '../trace/attention';
import type { SelectionSource } from '../trace/types';

/** Weight element types the engine reads (safetensors dtype names). */
export type WeightDtype = 'F32' | 'F16' | 'BF16';

/** One tensor of a safetensors file, already validated against the file's size. */
export interface NativeTensorSpec {
  name: string;
  /** Absolute path of the .safetensors file holding it. */
  file: string;
  dtype: WeightDtype;
  shape: number[];
  /** Byte range inside the file (absolute: the 8-byte length and the JSON header included). */
  begin: number;
  end: number;
}

export interface RopeScalingSpec {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

/** The Llama-family shape, read from config.json and checked by src/model/config.ts. */
export interface ModelArch {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScalingSpec | null;
  /** Qwen2: bias on q, k and v projections. */
  attentionBias: boolean;
  tieEmbeddings: boolean;
}

export interface NativeModelSpec {
  arch: ModelArch;
  tensors: NativeTensorSpec[];
  /** Tokens per KV-cache block (default 32). */
  kvBlockSize: number;
  /** Worker threads for matrix work (0: one per core). */
  threads: number;
  /** Most tokens a sequence may hold (the context actually used; at most arch.maxPositions). */
  contextTokens: number;
  /**
   * Physical KV blocks per layer (default: four sequences of contextTokens). Memory is reserved,
   * not committed: a block costs memory only once written.
   */
  kvBlocks?: number;
  /** Which backend runs the model (default 'cpu'); one that backends() lists as unavailable is refused. */
  backend?: 'cpu' | 'cuda';
  /**
   * CUDA prefill: 'float32' (default) keeps float32-level accuracy; 'half' rounds the prefill's
   * operands once to 16 bits (faster, errors ~1e-3 relative). Decode is unaffected; the CPU ignores it.
   */
  prefillPrecision?: PrefillPrecision;
}

/** How the CUDA backend's prefill uses the tensor cores (see NativeModelSpec.prefillPrecision). */
export type PrefillPrecision = 'float32' | 'half';

/** Which logits forward() returns: none, the last position's, or every position's. */
export type LogitsWanted = 'none' | 'last' | 'all';

export interface NativeModel {
  /** A new empty sequence (its own block table in the paged KV cache). */
  newSequence(): number;
  /** A sequence sharing all of `seq`'s blocks copy-on-write. */
  forkSequence(seq: number): number;
  freeSequence(seq: number): void;
  /** Drops positions >= length (blocks freed when no longer referenced). */
  truncateSequence(seq: number, length: number): void;
  sequenceLength(seq: number): number;
  /**
   * Appends `tokens` to `seq` and runs them through the model.
   * Returns logits as [n, vocab] row-major ('all'), [vocab] ('last'), or an empty array ('none').
   */
  forward(seq: number, tokens: Int32Array, logits: LogitsWanted): Float32Array;
  /** Counters since load (tokens prefilled/decoded, KV blocks in use, bytes of weights). */
  stats(): NativeStats;
  dispose(): void;
  /**
   * Test accessor: the keys written to logical block `block` of `seq` in `layer` for one KV head
   * ([fill][headDim], fill = positions of the sequence in that block) and the block's key summary
   * (element-wise min and max [headDim]), with the physical block id behind it.
   */
  kvBlockSummary(seq: number, layer: number, block: number, kvHead: number): KvBlockSummary;
  /**
   * Sparse decode attention (PrHS or a baseline) for the decode steps that follow (one-token
   * forwards), with fresh state; null: dense. Install it after the prefill. The selection runs on
   * the host on every backend; CUDA attends the chosen blocks on the GPU.
   */
  setAttention(settings: AttentionSettings | null): void;
  /** The latest decode step's selection per layer and KV head; null before the first step or when dense. */
  attentionStep(): NativeAttentionStep | null;
  /** Totals since setAttention; null when dense. */
  attentionCounters(): NativeAttentionCounters | null;
  /**
   * Keys and values of positions [start, start + count) of `seq`, as float32
   * [layers][2: keys, values][count][kvHeads][headDim] (native/kv/kv_io.h). The disk cache stores these.
   */
  exportKv(seq: number, start: number, count: number): Float32Array;
  /** Appends a span laid out as exportKv returns it to `seq`: the restored positions are bit-identical. */
  importKv(seq: number, span: Float32Array): void;
  /**
   * Per-file KV segments (docs/kv-cache.md). Appends a span (exportKv's layout) that was prefilled
   * at positions `from`.. to `seq`, its keys re-rotated to the positions they take there. CPU backend only.
   */
  appendRotated(seq: number, span: Float32Array, from: number): void;
  /**
   * Runs `tokens` again at their `positions` (strictly increasing, inside `seq`) with dense attention
   * over the sequence as it is, overwriting their keys and values. CPU backend only.
   */
  recompute(seq: number, tokens: Int32Array, positions: Int32Array): void;
  /**
   * Where `tokens` (e.g. the question) would attend in `seq`: per position, the attention probability
   * summed over layers, query heads and tokens ([sequenceLength(seq)]); run on a fork, densely. CPU backend only.
   */
  attentionMass(seq: number, tokens: Int32Array): Float32Array;
}

export interface KvBlockSummary {
  keys: Float32Array;
  min: Float32Array;
  max: Float32Array;
  physicalBlock: number;
}

export interface NativeStats {
  tokensForwarded: number;
  kvBlocksInUse: number;
  kvBlocksCapacity: number;
  weightBytes: number;
  backend: string;
  /** Backend::detail(): e.g. the library computing the CUDA prefill GEMM; empty when nothing to say. */
  backendDetail: string;
}

export interface NativeAddon {
  loadModel(spec: NativeModelSpec): NativeModel;
  /** Which backends this build has and can use now, with the reason when one cannot be used. */
  backends(): { name: string; available: boolean; reason?: string }[];
  /** Each CPU op on its own, for the op tests (test/native/ops.test.ts). Weights are raw little-endian bytes. */
  ops: NativeOps;
}

export interface RopeScalingArgs {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface NativeOps {
  /** y [n][rows] = x [n][cols] . w^T (+ bias [rows]); w is [rows][cols] in `dtype`. */
  matmul(x: Float32Array, n: number, w: Uint8Array, dtype: WeightDtype, rows: number, cols: number, bias: Float32Array | null): Float32Array;
  /** [n][dim] RMS-normalised x times weight [dim] (in `dtype`). */
  rmsnorm(x: Float32Array, weight: Uint8Array, dtype: WeightDtype, n: number, dim: number, eps: number): Float32Array;
  /** x [n][heads][headDim] rotated (HF rotate_half), token t at position pos0 + t. */
  rope(x: Float32Array, n: number, heads: number, headDim: number, pos0: number, invFreq: Float32Array): Float32Array;
  /** RoPE inverse frequencies [headDim/2], llama3 scaling applied when given. */
  ropeInvFreq(headDim: number, theta: number, scaling: RopeScalingArgs | null): Float32Array;
  /** silu(gate) * up. */
  swiglu(gate: Float32Array, up: Float32Array): Float32Array;
  /** Rows `tokens` of table [rows][cols] (in `dtype`) as float32 [n][cols]. */
  embed(table: Uint8Array, dtype: WeightDtype, rows: number, cols: number, tokens: Int32Array): Float32Array;
  /**
   * Causal GQA attention through a one-layer paged KV cache holding keys/values [pos0 + n][nKvHeads][headDim]
   * (its blocks placed after `skipBlocks` blocks of another sequence); q [n][nHeads][headDim] -> [n][nHeads][headDim].
   */
  attention(args: {
    q: Float32Array; keys: Float32Array; values: Float32Array; n: number; pos0: number;
    nHeads: number; nKvHeads: number; headDim: number; blockSize: number; skipBlocks: number;
  }): Float32Array;
}

/** One KV head's selection at a decode step (see src/trace/types.ts HeadSelection). */
export interface NativeHeadSelection {
  /** Logical block ids read, ascending. */
  blocks: Int32Array;
  source: SelectionSource;
  deltaHat: number | null;
  delta: number | null;
  expanded: number;
  entriesRead: number;
}

export interface NativeAttentionStep {
  step: number;
  /** [layer][kvHead] */
  layers: NativeHeadSelection[][];
}

export interface NativeAttentionCounters {
  steps: number;
  selections: number;
  scoringPasses: number;
  certifyPasses: number;
  certified: number;
  expanded: number;
  entriesRead: number;
  entriesContext: number;
  summaryBytes: number;
}
