// The repository text the model reads, and its tokens.
//
// Format (stable; training data is generated in exactly this format). Each file is one segment:
//
//   ### FILE: src/app.ts\n
//   <the file's text, with a final \n added if it had none>
//
// Segments follow one another with nothing between them. Paths are relative to the repository
// root with `/` separators. The header is line 0 of a segment; the file's own lines are 1..N.
//
// Tokens: each segment is encoded on its own, and the repository's ids are the concatenation of
// the segments' ids. This can differ slightly from encoding the whole text at once (a tokenizer
// that prepends a space marker does so once per segment; no merge crosses a file boundary), and
// these ids — not a re-encoding of `text` — are what the engine is fed.

import { createHash } from 'node:crypto';
import type { ContextTokenizer } from './types.js';

export const HEADER_PREFIX = '### FILE: ';

export function fileHeader(relPath: string): string {
  return `${HEADER_PREFIX}${relPath}\n`;
}

export function segmentText(relPath: string, content: string): string {
  return fileHeader(relPath) + content + (content.endsWith('\n') ? '' : '\n');
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Token ids of segments keyed by the sha256 of their text, so an unchanged file is not
 * encoded again. Least recently used entries go first once `maxTokens` are held.
 * One cache belongs to one tokenizer (see cacheFor).
 */
export class TokenCache {
  private readonly entries = new Map<string, Uint32Array>();
  private heldTokens = 0;
  hits = 0;
  misses = 0;

  constructor(readonly maxTokens = 16 * 1024 * 1024) {}

  encode(tokenizer: ContextTokenizer, text: string, hash = sha256(text)): Uint32Array {
    const cached = this.entries.get(hash);
    if (cached) {
      this.hits++;
      this.entries.delete(hash); // re-insert: Map order is the recency order
      this.entries.set(hash, cached);
      return cached;
    }
    this.misses++;
    const ids = Uint32Array.from(tokenizer.encode(text));
    this.entries.set(hash, ids);
    this.heldTokens += ids.length;
    for (const [key, value] of this.entries) {
      if (this.heldTokens <= this.maxTokens) break;
      this.entries.delete(key);
      this.heldTokens -= value.length;
    }
    return ids;
  }

  get size(): number {
    return this.entries.size;
  }
}

const cachesByTokenizer = new WeakMap<ContextTokenizer, TokenCache>();

/** The cache shared by every build that uses this tokenizer object. */
export function cacheFor(tokenizer: ContextTokenizer): TokenCache {
  let cache = cachesByTokenizer.get(tokenizer);
  if (!cache) {
    cache = new TokenCache();
    cachesByTokenizer.set(tokenizer, cache);
  }
  return cache;
}

/**
 * Which segment line each token starts and ends on (0 = header, 1.. = the file's lines),
 * from the number of newlines in each token's decoded text. A token's newline count depends
 * on its id alone, so it is learned once per id (NewlineCounter).
 */
export interface TokenLines {
  start: Int32Array;
  end: Int32Array;
}

export class NewlineCounter {
  private readonly counts = new Map<number, { total: number; beforeLast: number }>();
  constructor(private readonly tokenizer: ContextTokenizer) {}

  lines(ids: ArrayLike<number>): TokenLines {
    const start = new Int32Array(ids.length);
    const end = new Int32Array(ids.length);
    let line = 0;
    for (let i = 0; i < ids.length; i++) {
      const c = this.count(ids[i]);
      start[i] = line;
      end[i] = line + c.beforeLast;
      line += c.total;
    }
    return { start, end };
  }

  private count(id: number): { total: number; beforeLast: number } {
    let c = this.counts.get(id);
    if (!c) {
      const text = this.tokenizer.decode([id]);
      let total = 0;
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) total++;
      // A newline that ends the token ends its line: the token's last character is on the line before.
      const beforeLast = text.endsWith('\n') ? total - 1 : total;
      c = { total, beforeLast: Math.max(0, beforeLast) };
      this.counts.set(id, c);
    }
    return c;
  }
}

export function countLines(content: string): number {
  let n = 0;
  for (let i = content.indexOf('\n'); i >= 0; i = content.indexOf('\n', i + 1)) n++;
  return content.endsWith('\n') ? n : n + 1;
}
