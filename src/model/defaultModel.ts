// The model used when none is configured: the Hugging Face folder shipped with the package at
// models/repo-lens-code (issue 8). The CLI finds the package root from its own bundle (dist/cli.js),
// the extension from its extensionUri; a configured folder always wins.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The default model's folder, relative to the package root. */
export const DEFAULT_MODEL_SUBDIR = join('models', 'repo-lens-code');

/** No model configured and the bundled one is absent; `message` says how to configure one. */
export class DefaultModelMissingError extends Error {}

/** The folder holding this package's package.json (name "repo-lens"), searched upwards from `start`. */
export function packageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (isRepoLensPackage(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no repo-lens package.json above ${start}`);
  }
}

function isRepoLensPackage(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === 'repo-lens';
  } catch {
    return false;
  }
}

/** The bundled default model folder of the package at `root` (whether present or not). */
export function bundledModelDir(root: string): string {
  return join(root, DEFAULT_MODEL_SUBDIR);
}

/**
 * The model folder to load: `configured` when given (non-empty), else the bundled default under
 * `root`. Throws DefaultModelMissingError (ending with `howToConfigure`, when given) where the
 * default is needed and has no config.json (a checkout or build without the model).
 */
export function resolveModelDir(configured: string | undefined, root: string, howToConfigure: string): string {
  const given = configured?.trim();
  if (given) return given;
  const dir = bundledModelDir(root);
  const config = join(dir, 'config.json');
  if (!existsSync(config) || !statSync(config).isFile()) {
    throw new DefaultModelMissingError([`No model is configured and the bundled default model is missing (${config} not found).`, howToConfigure].filter(Boolean).join(' '));
  }
  return dir;
}
