// The JavaScript face of the native addon (native/addon.cc). Only the engine process loads it;
// the extension host never does, so a fault in native code cannot take the editor down.

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
}

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
}

export interface NativeStats {
  tokensForwarded: number;
  kvBlocksInUse: number;
  kvBlocksCapacity: number;
  weightBytes: number;
  backend: string;
}

export interface NativeAddon {
  loadModel(spec: NativeModelSpec): NativeModel;
  /** Which backends this build has and can use now, with the reason when one cannot be used. */
  backends(): { name: string; available: boolean; reason?: string }[];
}
