// The repository's KV on disk (src/cache) for the extension: where it lives (this workspace's
// storage), its size cap (repoLens.kvCache.maxBytes, 0 = off), and the command that clears it.
import * as vscode from 'vscode';
import { clearCache } from '../cache/store';

const GIB = 1024 ** 3;

/** The cache folder: per workspace when one is open, else the extension's global storage. */
export function kvCacheDir(context: vscode.ExtensionContext): string {
  return vscode.Uri.joinPath(context.storageUri ?? context.globalStorageUri, 'kv-cache').fsPath;
}

/** The `cache` option of ask/explain, or undefined when the setting turns the disk cache off. */
export function kvCacheOption(dir: string): { dir: string; maxBytes: number } | undefined {
  const gib = vscode.workspace.getConfiguration('repoLens').get<number>('kvCache.maxGiB', 4);
  if (!(gib > 0)) return undefined;
  return { dir, maxBytes: Math.floor(gib * GIB) };
}

function size(bytes: number): string {
  return bytes >= 1024 ** 2 ? `${(bytes / 1024 ** 2).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Repo Lens: Clear KV Cache. Removes the cache folder's entries and says how much was freed. */
export function clearKvCache(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): () => Promise<void> {
  return async () => {
    const dir = kvCacheDir(context);
    try {
      const { removed, bytes } = await clearCache(dir);
      const message = removed ? `Repo Lens: cleared the KV cache: ${removed} file${removed === 1 ? '' : 's'}, ${size(bytes)} freed.` : 'Repo Lens: the KV cache is already empty.';
      log.info(`${message} (${dir})`);
      void vscode.window.showInformationMessage(message);
    } catch (e) {
      const message = `Repo Lens: cannot clear the KV cache in ${dir}: ${e instanceof Error ? e.message : String(e)}`;
      log.error(message);
      void vscode.window.showErrorMessage(message);
    }
  };
}
