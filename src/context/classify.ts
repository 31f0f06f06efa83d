// Decides which files of a repository become model context, and says why the others do not.
// Three stages, cheapest first: by folder name (vendored trees are never walked), by file
// name (lock files, known binary formats, minified bundles and source maps: never opened),
// then by content (binary, generated, non-UTF-8). Reasons are sentences a user can read.

import { constants, promises as fs } from 'node:fs';

export const DEFAULT_MAX_FILE_BYTES = 256 * 1024;
/** A line longer than this marks minified or generated text. */
export const MAX_LINE_CHARS = 1000;
/** How many leading bytes the binary sniff looks at. */
const SNIFF_BYTES = 8192;

const VENDORED_FOLDERS = new Map<string, string>([
  ['.git', 'version-control metadata'],
  ['.hg', 'version-control metadata'],
  ['.svn', 'version-control metadata'],
  ['node_modules', 'vendored dependencies'],
  ['bower_components', 'vendored dependencies'],
  ['jspm_packages', 'vendored dependencies'],
  ['vendor', 'vendored dependencies'],
  ['third_party', 'vendored dependencies'],
  ['third-party', 'vendored dependencies'],
  ['site-packages', 'vendored dependencies'],
  ['.venv', 'virtual environment'],
  ['venv', 'virtual environment'],
  ['__pycache__', 'build output'],
  ['dist', 'build output'],
  ['build', 'build output'],
  ['out', 'build output'],
  ['target', 'build output'],
  ['.next', 'build output'],
  ['.nuxt', 'build output'],
  ['.turbo', 'build output'],
  ['.cache', 'cache'],
  ['.gradle', 'cache'],
  ['.mypy_cache', 'cache'],
  ['.pytest_cache', 'cache'],
  ['.tox', 'cache'],
  ['coverage', 'test coverage output'],
]);

const LOCK_FILES = new Set([
  'package-lock.json', 'npm-shrinkwrap.json', 'yarn.lock', 'pnpm-lock.yaml', 'bun.lockb', 'bun.lock',
  'Cargo.lock', 'poetry.lock', 'Pipfile.lock', 'uv.lock', 'pdm.lock', 'composer.lock', 'Gemfile.lock',
  'go.sum', 'flake.lock', 'mix.lock', 'pubspec.lock', 'Podfile.lock', 'packages.lock.json',
  'gradle.lockfile', 'Package.resolved', 'deno.lock',
]);

const BINARY_EXTENSIONS = new Set([
  'png', 'jpg', 'jpeg', 'gif', 'bmp', 'ico', 'icns', 'webp', 'avif', 'tif', 'tiff', 'psd',
  'mp3', 'mp4', 'm4a', 'wav', 'ogg', 'flac', 'webm', 'mov', 'avi', 'mkv',
  'zip', 'gz', 'tgz', 'bz2', 'xz', 'zst', '7z', 'rar', 'tar', 'jar', 'war', 'whl', 'vsix', 'nupkg',
  'pdf', 'doc', 'docx', 'xls', 'xlsx', 'ppt', 'pptx', 'odt',
  'exe', 'dll', 'so', 'dylib', 'a', 'lib', 'o', 'obj', 'node', 'wasm', 'class', 'pyc', 'pyo', 'bin',
  'ttf', 'otf', 'woff', 'woff2', 'eot',
  'safetensors', 'gguf', 'pt', 'pth', 'onnx', 'npy', 'npz', 'pkl', 'h5', 'parquet', 'arrow',
  'sqlite', 'sqlite3', 'db', 'dat',
]);

/** Why a folder is not walked, or undefined to walk it. */
export function classifyFolder(name: string): string | undefined {
  const kind = VENDORED_FOLDERS.get(name);
  return kind === undefined ? undefined : `${kind} folder (${name}/)`;
}

/** Why a file is left out from its name alone (it is then never opened), or undefined. */
export function classifyByName(relPath: string): string | undefined {
  const name = relPath.slice(relPath.lastIndexOf('/') + 1);
  if (LOCK_FILES.has(name)) return 'lock file';
  const lower = name.toLowerCase();
  if (/\.min\.(js|mjs|cjs|css)$/.test(lower) || /[.-]bundle\.js$/.test(lower)) return 'minified file (by its name)';
  if (lower.endsWith('.map')) return 'source map (generated)';
  const dot = lower.lastIndexOf('.');
  if (dot > 0 && BINARY_EXTENSIONS.has(lower.slice(dot + 1))) return `binary file (.${lower.slice(dot + 1)})`;
  return undefined;
}

export type ReadResult =
  | { ok: true; text: string; encoding: TextEncodingName }
  | { ok: false; reason: string };

export type TextEncodingName = 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252';

/**
 * Reads one file as text if it should be context. Never blocks on a FIFO (O_NONBLOCK, and
 * the opened descriptor must be a regular file), never follows a symlink swapped in after
 * the walk (O_NOFOLLOW), and never reads more than `maxBytes` (the size is checked on the
 * open descriptor first, so a 100 MB file costs one fstat).
 */
export async function readContextFile(absPath: string, maxBytes: number): Promise<ReadResult> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(absPath, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    return { ok: false, reason: `unreadable: ${errorText(err)}` };
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { ok: false, reason: 'not a regular file' };
    if (stat.size > maxBytes) return { ok: false, reason: overSizeReason(stat.size, maxBytes) };
    if (stat.size === 0) return { ok: false, reason: 'empty file' };
    // One byte more than allowed, to notice a file that grew since the fstat.
    const buffer = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled > maxBytes) return { ok: false, reason: overSizeReason(filled, maxBytes) };
    return decodeText(buffer.subarray(0, filled));
  } catch (err) {
    return { ok: false, reason: `unreadable: ${errorText(err)}` };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

export function overSizeReason(size: number, maxBytes: number): string {
  return `over the size limit (${formatBytes(size)} > ${formatBytes(maxBytes)})`;
}

/**
 * Bytes to text, or the reason they are not text.
 * - NUL bytes or many control characters in the first 8 KB: binary.
 * - A UTF-16 byte-order mark: decoded as UTF-16 (Windows editors write these).
 * - Valid UTF-8 (a UTF-8 BOM is dropped): used as is.
 * - Otherwise the text is decoded as Windows-1252 (a superset of Latin-1) rather than
 *   skipped: such files are nearly always legacy source with a few accented letters in
 *   comments or strings, and losing all their code costs more than a few odd characters.
 * Generated text (a marker near the top, or a line over MAX_LINE_CHARS) is then left out.
 */
export function decodeText(bytes: Uint8Array): ReadResult {
  if (bytes.length === 0) return { ok: false, reason: 'empty file' };
  let text: string;
  let encoding: TextEncodingName;
  if (bytes[0] === 0xff && bytes[1] === 0xfe) {
    text = new TextDecoder('utf-16le').decode(bytes.subarray(2));
    encoding = 'utf-16le';
  } else if (bytes[0] === 0xfe && bytes[1] === 0xff) {
    text = new TextDecoder('utf-16be').decode(bytes.subarray(2));
    encoding = 'utf-16be';
  } else {
    const binary = binaryReason(bytes.subarray(0, SNIFF_BYTES));
    if (binary) return { ok: false, reason: binary };
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
      encoding = 'utf-8';
    } catch {
      text = new TextDecoder('windows-1252').decode(bytes);
      encoding = 'windows-1252';
    }
  }
  const generated = generatedReason(text);
  if (generated) return { ok: false, reason: generated };
  return { ok: true, text, encoding };
}

function binaryReason(head: Uint8Array): string | undefined {
  let control = 0;
  for (const b of head) {
    if (b === 0) return 'binary file (NUL bytes)';
    // Control characters other than tab, newline, form feed, carriage return, escape.
    if (b < 0x20 && b !== 9 && b !== 10 && b !== 12 && b !== 13 && b !== 27) control++;
  }
  return control > head.length / 10 ? 'binary file (control characters)' : undefined;
}

function generatedReason(text: string): string | undefined {
  const top = text.slice(0, 1024);
  if (/@generated\b|\bDO NOT EDIT\b|\bauto-?generated\b/i.test(top)) return 'generated file (marked as generated near the top)';
  let longest = 0;
  let lineStart = 0;
  for (;;) {
    const nl = text.indexOf('\n', lineStart);
    const end = nl < 0 ? text.length : nl;
    longest = Math.max(longest, end - lineStart);
    if (nl < 0) break;
    lineStart = nl + 1;
  }
  return longest > MAX_LINE_CHARS ? `generated or minified (a line of ${longest} characters)` : undefined;
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${n} bytes`;
}
