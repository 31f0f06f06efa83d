// A disk-cache folder: entries (format.ts) named after what they were made for, a size cap kept
// by removing the least recently used entries (a file's mtime is set when it is written or
// restored from), temporary files abandoned by a writer that died, and clearing.

import { createHash } from 'node:crypto';
import { promises as fsp, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { ENTRY_SUFFIX, TEMP_SUFFIX, tempWriter, type Fingerprint } from './format';

/** Default cap on a folder's entries (bytes). */
export const DEFAULT_MAX_BYTES = 4 * 1024 ** 3;

/** The file of the entry for `key` (e.g. a repository root) made with `fingerprint`. */
export function entryFile(dir: string, key: string, fingerprint: Fingerprint): string {
  const name = createHash('sha256').update(JSON.stringify({ key, fingerprint })).digest('hex').slice(0, 32);
  return join(dir, name + ENTRY_SUFFIX);
}

function isOurs(name: string): boolean {
  return name.endsWith(ENTRY_SUFFIX) || tempWriter(name) !== null;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary files whose writer no longer runs (killed mid-write): they were never renamed
 * into place, so nothing ever read them. Returns a sentence per file removed.
 */
export function sweepAbandoned(dir: string): string[] {
  const notes: string[] = [];
  for (const name of listNames(dir)) {
    const pid = tempWriter(name);
    if (pid === null || pid === process.pid || processAlive(pid)) continue;
    rmSync(join(dir, name), { force: true });
    notes.push(`removed ${name}: an incomplete cache file left by process ${pid}, which ended while writing it`);
  }
  return notes;
}

export interface CachedEntry {
  file: string;
  bytes: number;
  /** Last written or restored from (ms since the epoch). */
  usedMs: number;
}

export function listEntries(dir: string): CachedEntry[] {
  const out: CachedEntry[] = [];
  for (const name of listNames(dir)) {
    if (!name.endsWith(ENTRY_SUFFIX)) continue;
    try {
      const s = statSync(join(dir, name));
      out.push({ file: join(dir, name), bytes: s.size, usedMs: s.mtimeMs });
    } catch { /* removed meanwhile */ }
  }
  return out;
}

/** Marks an entry as just used (least-recently-used order). */
export function touch(file: string): void {
  const now = new Date();
  try { utimesSync(file, now, now); } catch { /* removed meanwhile: nothing to mark */ }
}

/**
 * Removes least recently used entries until the folder's entries take at most `maxBytes`,
 * never `keep` (the entry just written). Returns the files removed.
 */
export function evict(dir: string, maxBytes: number, keep?: string): string[] {
  const entries = listEntries(dir).sort((a, b) => a.usedMs - b.usedMs);
  let total = entries.reduce((sum, e) => sum + e.bytes, 0);
  const removed: string[] = [];
  for (const e of entries) {
    if (total <= maxBytes) break;
    if (e.file === keep) continue;
    rmSync(e.file, { force: true });
    total -= e.bytes;
    removed.push(e.file);
  }
  return removed;
}

/**
 * Removes every cache entry and temporary file in `dir` (other files are left alone); a missing
 * folder is an empty cache. For the "clear cache" command.
 */
export async function clearCache(dir: string): Promise<{ removed: number; bytes: number }> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { removed: 0, bytes: 0 };
    throw e;
  }
  let removed = 0;
  let bytes = 0;
  for (const name of names.filter(isOurs)) {
    const file = join(dir, name);
    try {
      const s = await fsp.stat(file);
      await fsp.rm(file, { force: true });
      removed++;
      bytes += s.size;
    } catch { /* removed meanwhile */ }
  }
  return { removed, bytes };
}

function listNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => n.endsWith(ENTRY_SUFFIX) || n.endsWith(TEMP_SUFFIX));
  } catch {
    return [];
  }
}
