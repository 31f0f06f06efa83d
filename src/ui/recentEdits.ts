// The files edited in this session, most recent first (no VS Code here: editWatcher.ts feeds it).
// Asks pass them as recentFiles, so edited files sit at the end of the prompt and an edit costs
// only the prefill from the first edited file onwards (docs/kv-cache.md).

/** Enough to cover a working session; an edit beyond this drops the least recent. */
const DEFAULT_CAP = 32;

export class RecentEdits {
  // A Map keeps insertion order: the last key is the most recent edit.
  private readonly paths = new Map<string, true>();

  constructor(private readonly cap = DEFAULT_CAP) {}

  /** Records an edit of `path` (relative to the workspace, `/`-separated). Constant work per call. */
  record(path: string): void {
    this.paths.delete(path);
    this.paths.set(path, true);
    if (this.paths.size > this.cap) this.paths.delete(this.paths.keys().next().value!);
  }

  /** A file deleted or renamed away is no longer recent. */
  forget(path: string): void {
    this.paths.delete(path);
  }

  /** Most recent first. */
  list(): string[] {
    return [...this.paths.keys()].reverse();
  }
}
