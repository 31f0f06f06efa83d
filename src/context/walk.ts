// Walks a repository folder and lists its candidate files (path, size, mtime) without reading
// them. Honours .gitignore at every level (plus .git/info/exclude) and exclude globs, prunes
// vendored folders, skips everything that is not a regular file, and never follows symbolic
// links: git stores a link as a link, so the linked content is either in the repository at its
// own path (and read there) or outside it (and not ours to read). That also rules out loops.
// Memory: one directory's entry names at a time, plus the list of candidates (metadata only).

import { promises as fs, type Dirent } from 'node:fs';
import * as path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { classifyFolder, errorText } from './classify.js';
import { compileGlobs, type GlobMatcher } from './glob.js';
import type { ContextProgress, SkippedFile } from './types.js';

export interface WalkedFile {
  /** Relative to the root, `/`-separated. */
  path: string;
  size: number;
  mtimeMs: number;
}

export interface WalkOptions {
  /** Absolute, already resolved with realpath. */
  root: string;
  exclude?: readonly string[];
  /** The walk stops (and says so) after this many candidate files. */
  maxFiles: number;
  signal?: AbortSignal;
  onProgress?: (progress: ContextProgress) => void;
  skip: (skipped: SkippedFile) => void;
}

/** Gitignore rules of one folder; `base` is that folder relative to the root ('' for the root). */
interface IgnoreLevel {
  base: string;
  rules: Ignore;
}

const MAX_IGNORE_FILE_BYTES = 1024 * 1024;

export async function walkRepository(options: WalkOptions): Promise<WalkedFile[]> {
  const { root, signal, skip } = options;
  const excluded: GlobMatcher = compileGlobs(options.exclude ?? []);
  const files: WalkedFile[] = [];
  let folders = 0;
  let stopped = false;

  const rootLevels: IgnoreLevel[] = [];
  const infoExclude = await readIgnoreFile(path.join(root, '.git', 'info', 'exclude'));
  if (infoExclude !== undefined) rootLevels.push({ base: '', rules: ignore({ ignorecase: false }).add(infoExclude) });

  // Depth-first with an explicit stack (no recursion depth limit); children pushed in reverse
  // so folders are visited in sorted order.
  const stack: { rel: string; levels: IgnoreLevel[] }[] = [{ rel: '', levels: rootLevels }];
  while (stack.length > 0 && !stopped) {
    signal?.throwIfAborted();
    const { rel: folderRel, levels: parentLevels } = stack.pop()!;
    const folderAbs = folderRel === '' ? root : path.join(root, folderRel);
    let entries: Dirent[];
    try {
      entries = await fs.readdir(folderAbs, { withFileTypes: true });
    } catch (err) {
      skip({ path: folderRel === '' ? '.' : folderRel + '/', reason: `unreadable folder: ${errorText(err)}` });
      continue;
    }
    folders++;
    entries.sort((a, b) => compareNames(a.name, b.name));

    let levels = parentLevels;
    if (entries.some((e) => e.name === '.gitignore' && e.isFile())) {
      const text = await readIgnoreFile(path.join(folderAbs, '.gitignore'));
      if (text !== undefined) levels = [...parentLevels, { base: folderRel, rules: ignore({ ignorecase: false }).add(text) }];
    }

    const subfolders: string[] = [];
    for (const entry of entries) {
      const rel = folderRel === '' ? entry.name : `${folderRel}/${entry.name}`;
      if (entry.isDirectory()) {
        const vendored = classifyFolder(entry.name);
        if (vendored) {
          skip({ path: rel + '/', reason: vendored });
        } else if (!isIgnored(levels, rel + '/') && !excluded(rel)) {
          subfolders.push(rel);
        }
        continue;
      }
      if (isIgnored(levels, rel) || excluded(rel)) continue;
      if (entry.isSymbolicLink()) {
        skip({ path: rel, reason: await symlinkReason(root, path.join(root, rel)) });
        continue;
      }
      // lstat: the dirent type may be unknown on some file systems, and size/mtime are needed.
      let stat;
      try {
        stat = await fs.lstat(path.join(root, rel));
      } catch (err) {
        // readdir decodes names as UTF-8: a name that is not valid UTF-8 comes back altered.
        const badName = entry.name.includes('\uFFFD') && (err as NodeJS.ErrnoException).code === 'ENOENT';
        skip({ path: rel, reason: badName ? 'unreadable: its name is not valid UTF-8' : `unreadable: ${errorText(err)}` });
        continue;
      }
      if (stat.isDirectory()) {
        if (!classifyFolder(entry.name) && !isIgnored(levels, rel + '/') && !excluded(rel)) subfolders.push(rel);
        continue;
      }
      if (!stat.isFile()) {
        skip({ path: rel, reason: `not a regular file (${fileKind(stat)})` });
        continue;
      }
      if (files.length >= options.maxFiles) {
        skip({ path: rel, reason: `not considered, nor any file after it: the walk stops at ${options.maxFiles} files` });
        stopped = true;
        break;
      }
      files.push({ path: rel, size: stat.size, mtimeMs: stat.mtimeMs });
    }
    for (let i = subfolders.length - 1; i >= 0; i--) stack.push({ rel: subfolders[i], levels });
    options.onProgress?.({ phase: 'walk', done: folders, files: files.length, path: folderRel });
  }
  return files;
}

/** Git semantics: the deepest matching rule wins; a negation can re-include. */
function isIgnored(levels: readonly IgnoreLevel[], rel: string): boolean {
  let ignored = false;
  for (const { base, rules } of levels) {
    const local = base === '' ? rel : rel.slice(base.length + 1);
    let result: { ignored: boolean; unignored: boolean };
    try {
      result = rules.test(local);
    } catch {
      continue; // a name the ignore package refuses: no rule of this level applies
    }
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

async function readIgnoreFile(file: string): Promise<string | undefined> {
  try {
    const stat = await fs.lstat(file);
    if (!stat.isFile() || stat.size > MAX_IGNORE_FILE_BYTES) return undefined;
    return await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function symlinkReason(root: string, linkAbs: string): Promise<string> {
  try {
    const target = await fs.realpath(linkAbs);
    const inside = target === root || target.startsWith(root + path.sep);
    return inside
      ? `symbolic link, not followed (its target ${path.relative(root, target) || '.'} is read at its own path)`
      : 'symbolic link to outside the repository, not followed';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return 'symbolic link loop, not followed';
    if (code === 'ENOENT') return 'dangling symbolic link (its target does not exist)';
    return `symbolic link, not followed (${errorText(err)})`;
  }
}

function fileKind(stat: { isFIFO(): boolean; isSocket(): boolean; isBlockDevice(): boolean; isCharacterDevice(): boolean }): string {
  if (stat.isFIFO()) return 'FIFO';
  if (stat.isSocket()) return 'socket';
  if (stat.isBlockDevice()) return 'block device';
  if (stat.isCharacterDevice()) return 'character device';
  return 'special file';
}

/** Byte-wise order (not locale), so every machine orders the same way. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
