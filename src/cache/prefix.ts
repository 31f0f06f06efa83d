// The engine's side of the disk cache: restore the longest cached prefix of a prompt into a new
// sequence, and save a prompt's reusable prefix (the repository) after a generation. Nothing here
// fails a generation: every problem becomes a note (an entry discarded and why, a save skipped).

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import type { NativeModel } from '../model/native';
import { EntryReader, floatsPerPosition, InvalidEntryError, writeEntry, type Fingerprint, type KvShape } from './format';
import { DEFAULT_MAX_BYTES, entryFile, evict, sweepAbandoned, touch } from './store';

export interface PrefixCacheOptions {
  /** The cache folder (created when missing). */
  dir: string;
  /** Names the entry in the folder, e.g. the repository root: one entry per key and fingerprint. */
  key: string;
  /** Cap on the folder's entries in bytes (default DEFAULT_MAX_BYTES). */
  maxBytes?: number;
}

export interface Restored {
  seq: number;
  /** Positions restored: the prompt's first `tokens` ids. */
  tokens: number;
}

const MIB = 1024 * 1024;

function digest(ids: ArrayLike<number>): string {
  const a = Uint32Array.from(ids as ArrayLike<number>);
  return createHash('sha256').update(Buffer.from(a.buffer)).digest('hex');
}

function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** One per loaded model: the fingerprint and KV shape are fixed. */
export class PrefixDiskCache {
  /** Sentences for the user since the last call to takeNotes(). */
  private notes: string[] = [];
  private readonly swept = new Set<string>();
  /** Digest of the ids each entry file holds, when this process wrote or read it. */
  private readonly onDisk = new Map<string, string>();

  /** `onNote` also hears every note as it is made (the engine logs them). */
  constructor(private readonly fingerprint: Fingerprint, private readonly shape: KvShape, private readonly onNote?: (note: string) => void) {}

  takeNotes(): string[] {
    const n = this.notes;
    this.notes = [];
    return n;
  }

  /**
   * Restores into a new sequence of `model` the longest prefix of `ids` the entry holds, up to
   * `limit` positions, when it is longer than `atLeast` (what the caller already holds). An entry
   * that is damaged, of another format version or for another model is removed, with a note.
   */
  restore(model: NativeModel, ids: readonly number[], limit: number, atLeast: number, options: PrefixCacheOptions): Restored | null {
    const file = this.prepare(options.dir, options.key);
    if (!existsSync(file)) return null;
    let reader: EntryReader;
    try {
      reader = EntryReader.open(file, this.fingerprint);
    } catch (e) {
      this.reject(file, e);
      return null;
    }
    let seq = -1;
    try {
      const tokens = Math.min(commonPrefix(reader.ids, ids), limit);
      if (tokens <= atLeast) return null;
      seq = model.newSequence();
      for (let chunk = 0; chunk * reader.meta.chunkPositions < tokens; chunk++) model.importKv(seq, reader.readChunk(chunk));
      model.truncateSequence(seq, tokens);
      this.onDisk.set(file, digest(reader.ids));
      touch(file);
      return { seq, tokens };
    } catch (e) {
      if (seq >= 0) model.freeSequence(seq);
      this.reject(file, e);
      return null;
    } finally {
      reader.close();
    }
  }

  /** Saves positions [0, ids.length) of `seq` (which hold `ids`) unless the entry already holds them; returns the positions written. */
  save(model: NativeModel, seq: number, ids: readonly number[], options: PrefixCacheOptions): number {
    if (ids.length === 0) return 0;
    const file = this.prepare(options.dir, options.key);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    const want = digest(ids);
    if (this.onDisk.get(file) === want && existsSync(file)) {
      touch(file);
      return 0;
    }
    const bytes = ids.length * floatsPerPosition(this.shape) * 4;
    if (bytes > maxBytes) {
      this.note(`not saved: the prefix's KV takes ${(bytes / MIB).toFixed(1)} MiB, over the cache cap of ${(maxBytes / MIB).toFixed(1)} MiB`);
      return 0;
    }
    try {
      mkdirSync(options.dir, { recursive: true });
      writeEntry(file, { fingerprint: this.fingerprint, shape: this.shape, ids, readSpan: (start, count) => model.exportKv(seq, start, count) });
    } catch (e) {
      this.note(`not saved to ${file}: ${(e as Error).message}`);
      return 0;
    }
    this.onDisk.set(file, want);
    for (const removed of evict(options.dir, maxBytes, file)) {
      this.onDisk.delete(removed);
      this.note(`removed ${basename(removed)} (least recently used) to keep the cache under ${(maxBytes / MIB).toFixed(1)} MiB`);
    }
    return ids.length;
  }

  /** The entry file for `key`; the folder is swept of abandoned temporary files once per process. */
  private prepare(dir: string, key: string): string {
    if (!this.swept.has(dir)) {
      this.swept.add(dir);
      for (const n of sweepAbandoned(dir)) this.note(n);
    }
    return entryFile(dir, key, this.fingerprint);
  }

  private note(text: string): void {
    this.notes.push(text);
    this.onNote?.(text);
  }

  private reject(file: string, e: unknown): void {
    this.onDisk.delete(file);
    if (e instanceof InvalidEntryError) {
      rmSync(file, { force: true });
      this.note(`discarded ${file}: ${e.message}`);
    } else {
      this.note(`could not restore from ${file}: ${(e as Error).message}`);
    }
  }
}
