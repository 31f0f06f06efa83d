// The context builder: a repository folder in, the model's repository text and its tokens out,
// with a report of every file left out and why, and the block manifest (manifest.ts).
//   walk (walk.ts) → order (order.ts) → read and classify (classify.ts) → tokenize, fit the
//   budget (prompt.ts) → lay out → block manifest (manifest.ts)
// No VS Code here: the extension passes its settings (files.exclude, recent editors) in.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { classifyByName, DEFAULT_MAX_FILE_BYTES, errorText, overSizeReason, readContextFile, type TextEncodingName } from './classify.js';
import { buildManifest, type BlockManifest, type LaidOutFile } from './manifest.js';
import { orderFiles, priorityOrder, type OrderedFile } from './order.js';
import { cacheFor, countLines, fileHeader, NewlineCounter, segmentText, sha256, type TokenCache } from './prompt.js';
import type { ContextProgress, ContextTokenizer, SkippedFile } from './types.js';
import { walkRepository } from './walk.js';

export type { BlockManifest, BlockPiece, ManifestBlock, ManifestFile } from './manifest.js';
export type { ContextProgress, ContextTokenizer, SkippedFile } from './types.js';
export { buildManifest } from './manifest.js';
export { fileHeader, HEADER_PREFIX, segmentText, TokenCache } from './prompt.js';

export interface BuildContextOptions {
  /** The repository folder. */
  root: string;
  tokenizer: ContextTokenizer;
  /** Most tokens of repository text. */
  budgetTokens: number;
  /** Tokens per KV block, for the manifest (default 32). */
  blockSize?: number;
  /** Prompt tokens before the repository text (e.g. 1 for BOS), for the manifest (default 0). */
  offset?: number;
  /** Globs relative to the root (VS Code's files.exclude keys whose value is true). */
  exclude?: readonly string[];
  /** Recently edited files (relative to the root, or absolute inside it), most recent first. Default: guessed from mtimes. */
  recentFiles?: readonly string[];
  /** Files larger than this are left out unread (default 256 KB). */
  maxFileBytes?: number;
  /** The walk stops after this many candidate files (default 200,000). */
  maxFiles?: number;
  /** Token cache; default: one shared by every build with the same tokenizer object. */
  cache?: TokenCache;
  signal?: AbortSignal;
  onProgress?: (progress: ContextProgress) => void;
}

export interface ContextFile {
  path: string;
  /** Tokens of the segment (header + content). */
  tokens: number;
  /** Position of the segment's first token in `ids`. */
  startToken: number;
  /** The file's line count. */
  lines: number;
  /** sha256 (hex) of the segment text: changes when the path or the content does. */
  hash: string;
  /** How the bytes were decoded (see classify.ts: non-UTF-8 text is read as Windows-1252). */
  encoding: TextEncodingName;
}

export interface RepositoryContext {
  /** The repository text (see prompt.ts for its format). */
  text: string;
  /** Its token ids: the concatenation of each segment's encoding. Feed these to the engine. */
  ids: number[];
  files: ContextFile[];
  skipped: SkippedFile[];
  manifest: BlockManifest;
}

const DEFAULT_BLOCK_SIZE = 32;
const DEFAULT_MAX_FILES = 200_000;
const MAX_MISFITS_IN_A_ROW = 256;
const PROGRESS_EVERY_FILES = 64;

export async function buildContext(options: BuildContextOptions): Promise<RepositoryContext> {
  const { tokenizer, signal, onProgress } = options;
  const budget = options.budgetTokens;
  if (!Number.isInteger(budget) || budget < 0) throw new RangeError(`budgetTokens must be a non-negative integer, got ${budget}`);
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const cache = options.cache ?? cacheFor(tokenizer);

  const root = await resolveRoot(options.root);
  const skipped: SkippedFile[] = [];
  const skip = (s: SkippedFile) => skipped.push(s);

  const walkOptions = { root, exclude: options.exclude, maxFiles: options.maxFiles ?? DEFAULT_MAX_FILES, signal, onProgress, skip };
  const candidates: OrderedFile[] = [];
  const recentFiles = options.recentFiles?.map((p) => relativeToRoot(p, [path.resolve(options.root), root]));
  for (const f of orderFiles(await walkRepository(walkOptions), recentFiles)) {
    const byName = classifyByName(f.path);
    if (byName) skip({ path: f.path, reason: byName });
    else if (f.size > maxFileBytes) skip({ path: f.path, reason: overSizeReason(f.size, maxFileBytes) });
    else candidates.push(f);
  }

  // A file is only tried while the tokens of a header with an empty path still fit, and until
  // MAX_MISFITS_IN_A_ROW files in a row did not fit: the budget is then as good as full, and
  // reading the rest of a large repository only to reject it would cost seconds.
  const minSegmentTokens = Math.max(1, cache.encode(tokenizer, fileHeader('')).length);
  let misfitsInARow = 0;
  const chosen: { file: OrderedFile; ids: Uint32Array; segment: string; lines: number; hash: string; encoding: TextEncodingName }[] = [];
  let remaining = budget;
  let done = 0;
  for (const file of priorityOrder(candidates)) {
    signal?.throwIfAborted();
    if (done % PROGRESS_EVERY_FILES === 0) onProgress?.({ phase: 'read', done, total: candidates.length, path: file.path });
    done++;
    if (remaining < minSegmentTokens || misfitsInARow >= MAX_MISFITS_IN_A_ROW) {
      skip({ path: file.path, reason: 'over budget (not tried: the token budget is full)' });
      continue;
    }
    const read = await readContextFile(path.join(root, file.path), maxFileBytes);
    if (!read.ok) {
      skip({ path: file.path, reason: read.reason });
      continue;
    }
    const segment = segmentText(file.path, read.text);
    const hash = sha256(segment);
    let ids: Uint32Array;
    try {
      ids = cache.encode(tokenizer, segment, hash);
    } catch (err) {
      skip({ path: file.path, reason: `could not be tokenized: ${errorText(err)}` });
      continue;
    }
    if (ids.length > remaining) {
      skip({ path: file.path, reason: `over budget (${ids.length} tokens, ${remaining} left of ${budget})` });
      misfitsInARow++;
      continue;
    }
    misfitsInARow = 0;
    remaining -= ids.length;
    chosen.push({ file, ids, segment, lines: countLines(read.text), hash, encoding: read.encoding });
  }
  onProgress?.({ phase: 'read', done, total: candidates.length });

  chosen.sort((a, b) => a.file.rank - b.file.rank);
  const newlines = new NewlineCounter(tokenizer);
  const ids: number[] = [];
  const texts: string[] = [];
  const files: ContextFile[] = [];
  const laidOut: LaidOutFile[] = [];
  for (const c of chosen) {
    const startToken = ids.length;
    for (const id of c.ids) ids.push(id);
    texts.push(c.segment);
    files.push({ path: c.file.path, tokens: c.ids.length, startToken, lines: c.lines, hash: c.hash, encoding: c.encoding });
    laidOut.push({ path: c.file.path, startToken, lineCount: c.lines, tokenLines: newlines.lines(c.ids) });
  }
  const manifest = buildManifest(laidOut, blockSize, options.offset ?? 0);
  return { text: texts.join(''), ids, files, skipped, manifest };
}

/** An absolute path inside the root (as given, or after realpath) made relative; others unchanged. */
function relativeToRoot(p: string, roots: string[]): string {
  if (!path.isAbsolute(p)) return p;
  for (const r of roots) {
    const rel = path.relative(r, p);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) return rel.split(path.sep).join('/');
  }
  return p;
}

async function resolveRoot(root: string): Promise<string> {
  let real: string;
  try {
    real = await fs.realpath(root);
  } catch (err) {
    throw new Error(`repository folder ${root} cannot be opened: ${(err as Error).message}`);
  }
  const stat = await fs.stat(real);
  if (!stat.isDirectory()) throw new Error(`repository folder ${root} is not a folder`);
  return real;
}
