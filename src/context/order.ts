// The order files appear in the prompt, chosen for two readers:
// - the model: README and manifests first (what the project is), then the rest grouped by
//   folder, folders in path order, so related code sits together;
// - the KV cache: an edit invalidates everything after the edited file, so recently edited
//   files go last, the most recent at the very end.
// Which files fit the budget is decided in another order (see priorityOrder): README and
// manifests, then recent files (most likely what a question is about), then the rest.

import { compareNames, type WalkedFile } from './walk.js';

export type FileGroup = 'lead' | 'body' | 'recent';

export interface OrderedFile extends WalkedFile {
  group: FileGroup;
  /** Position in the prompt order (0 = first). */
  rank: number;
}

const READMES = /^readme(\.(md|markdown|rst|txt|adoc|org))?$/i;
const MANIFESTS = [
  'package.json', 'Cargo.toml', 'pyproject.toml', 'setup.py', 'setup.cfg', 'requirements.txt', 'go.mod',
  'pom.xml', 'build.gradle', 'build.gradle.kts', 'settings.gradle', 'Gemfile', 'composer.json', 'mix.exs',
  'deno.json', 'CMakeLists.txt', 'meson.build', 'Makefile', 'tsconfig.json', 'Package.swift', 'pubspec.yaml',
];

/** When no list of recent files is given, files edited this long after most of the repository count as recent. */
const RECENT_AFTER_MEDIAN_MS = 60_000;
const MAX_RECENT_BY_MTIME = 16;

/**
 * @param recentFiles paths (relative, `/`-separated) of recently edited files, most recent first.
 *   Without it, files whose mtime is over a minute newer than the repository's median mtime
 *   (at most 16) count as recent: a fresh clone has none, a repository being worked on has some.
 */
export function orderFiles(files: readonly WalkedFile[], recentFiles?: readonly string[]): OrderedFile[] {
  const recentRank = recentFiles ? rankFromList(files, recentFiles) : rankFromMtimes(files);
  const lead: WalkedFile[] = [];
  const body: WalkedFile[] = [];
  const recent: WalkedFile[] = [];
  for (const f of files) {
    if (recentRank.has(f.path)) recent.push(f);
    else if (leadRank(f.path) >= 0) lead.push(f);
    else body.push(f);
  }
  lead.sort((a, b) => leadRank(a.path) - leadRank(b.path));
  body.sort(compareByFolder);
  // Least recent first, so the most recent ends the prompt.
  recent.sort((a, b) => recentRank.get(b.path)! - recentRank.get(a.path)!);
  const ordered: OrderedFile[] = [];
  for (const [group, list] of [['lead', lead], ['body', body], ['recent', recent]] as const) {
    for (const f of list) ordered.push({ ...f, group, rank: ordered.length });
  }
  return ordered;
}

/** The order in which files are offered the token budget. */
export function priorityOrder(ordered: readonly OrderedFile[]): OrderedFile[] {
  const weight = { lead: 0, recent: 1, body: 2 } as const;
  return [...ordered].sort((a, b) => weight[a.group] - weight[b.group] || (a.group === 'recent' ? b.rank - a.rank : a.rank - b.rank));
}

/** README first, then manifests in the listed order; only at the root. -1: not a lead file. */
function leadRank(relPath: string): number {
  if (relPath.includes('/')) return -1;
  if (READMES.test(relPath)) return 0;
  const i = MANIFESTS.indexOf(relPath);
  return i < 0 ? -1 : 1 + i;
}

/** Folder by folder (a folder's own files before its subfolders), byte order within. */
function compareByFolder(a: WalkedFile, b: WalkedFile): number {
  const slashA = a.path.lastIndexOf('/');
  const slashB = b.path.lastIndexOf('/');
  const dirA = slashA < 0 ? '' : a.path.slice(0, slashA);
  const dirB = slashB < 0 ? '' : b.path.slice(0, slashB);
  if (dirA !== dirB) return compareFolders(dirA, dirB);
  return compareNames(a.path, b.path);
}

/** Segment by segment, so `a/b` sorts right after `a` and before `a-b`. */
function compareFolders(a: string, b: string): number {
  const sa = a === '' ? [] : a.split('/');
  const sb = b === '' ? [] : b.split('/');
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const c = compareNames(sa[i], sb[i]);
    if (c !== 0) return c;
  }
  return sa.length - sb.length;
}

/** Rank 0 = most recent. */
function rankFromList(files: readonly WalkedFile[], recentFiles: readonly string[]): Map<string, number> {
  const present = new Set(files.map((f) => f.path));
  const ranks = new Map<string, number>();
  for (const p of recentFiles) {
    const normalized = p.replace(/\\/g, '/').replace(/^\.\//, '');
    if (present.has(normalized) && !ranks.has(normalized)) ranks.set(normalized, ranks.size);
  }
  return ranks;
}

function rankFromMtimes(files: readonly WalkedFile[]): Map<string, number> {
  if (files.length === 0) return new Map();
  const mtimes = files.map((f) => f.mtimeMs).sort((x, y) => x - y);
  const median = mtimes[Math.floor(mtimes.length / 2)];
  const newer = files
    .filter((f) => f.mtimeMs > median + RECENT_AFTER_MEDIAN_MS)
    .sort((a, b) => b.mtimeMs - a.mtimeMs || compareNames(a.path, b.path))
    .slice(0, MAX_RECENT_BY_MTIME);
  return new Map(newer.map((f, i) => [f.path, i]));
}
