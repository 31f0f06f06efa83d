// Types shared by the context builder's modules and its callers.

/**
 * What buildContext needs from a tokenizer: encode without special tokens (no BOS), and decode.
 * With src/model/tokenizer.ts, pass `{ encode: (t) => tok.encodeContinuation(t), decode: (ids) => tok.decode(ids) }`
 * (no dummy prefix space per file), and keep that one object: the token cache is per tokenizer object.
 */
export interface ContextTokenizer {
  encode(text: string): number[];
  /** Used on single tokens to learn how many newlines each holds (line ranges of KV blocks). */
  decode(ids: number[]): string;
}

/** A file or folder left out of the context, and why (a sentence a user can read). */
export interface SkippedFile {
  /** Relative to the root, `/`-separated; folders end with `/`. */
  path: string;
  reason: string;
}

export interface ContextProgress {
  /** walk: listing folders (done = folders listed); read: reading and tokenizing (done of total). */
  phase: 'walk' | 'read';
  done: number;
  total?: number;
  /** Candidate files found so far (walk). */
  files?: number;
  path?: string;
}
