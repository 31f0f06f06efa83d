// The block manifest: which file and lines each KV block of the repository text holds.
// The selection panel, citations and the PrHS trace read it.
//
// Format (JSON, version 1):
// {
//   "version": 1,
//   "blockSize": 32,          // tokens per KV block
//   "offset": 1,              // prompt tokens before the repository text (e.g. BOS)
//   "totalTokens": 5000,      // tokens of the repository text
//   "files": [ { "path": "README.md", "start": 0, "end": 120, "headerTokens": 6, "lines": 40 }, ... ],
//   "blocks": [
//     { "index": 0, "start": 0, "end": 31,
//       "pieces": [ { "file": 0, "start": 0, "end": 31, "headerTokens": 6, "lines": [1, 9] } ] },
//     ...
//   ]
// }
// Token positions (`start` inclusive, `end` exclusive) count from the start of the repository
// text; its token i sits at prompt position offset + i. Block `index` is the KV block of the
// prompt: it holds prompt positions [index*blockSize, (index+1)*blockSize), so with an offset
// the first block holds fewer repository tokens. A block that spans a file boundary has one
// piece per file. `headerTokens` counts the piece's tokens that belong to the file's
// `### FILE:` header line; `lines` is the 1-based inclusive range of the file's own lines the
// piece touches, null when the piece holds header tokens only. A token that straddles lines
// counts for each.

import type { TokenLines } from './prompt.js';

export interface BlockManifest {
  version: 1;
  blockSize: number;
  offset: number;
  totalTokens: number;
  files: ManifestFile[];
  blocks: ManifestBlock[];
}

export interface ManifestFile {
  path: string;
  start: number;
  end: number;
  headerTokens: number;
  /** The file's line count. */
  lines: number;
}

export interface ManifestBlock {
  index: number;
  start: number;
  end: number;
  pieces: BlockPiece[];
}

export interface BlockPiece {
  /** Index into `files`. */
  file: number;
  start: number;
  end: number;
  headerTokens: number;
  lines: [number, number] | null;
}

/** What the manifest is computed from: each included file's tokens in prompt order. */
export interface LaidOutFile {
  path: string;
  startToken: number;
  lineCount: number;
  tokenLines: TokenLines;
}

export function buildManifest(files: readonly LaidOutFile[], blockSize: number, offset = 0): BlockManifest {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`offset must be a non-negative integer, got ${offset}`);
  const manifestFiles: ManifestFile[] = files.map((f) => ({
    path: f.path,
    start: f.startToken,
    end: f.startToken + f.tokenLines.start.length,
    headerTokens: countHeaderTokens(f.tokenLines, 0, f.tokenLines.start.length),
    lines: f.lineCount,
  }));
  const totalTokens = manifestFiles.length ? manifestFiles[manifestFiles.length - 1].end : 0;
  const blocks: ManifestBlock[] = [];
  if (totalTokens > 0) {
    const firstBlock = Math.floor(offset / blockSize);
    const lastBlock = Math.floor((offset + totalTokens - 1) / blockSize);
    let fileIndex = 0;
    for (let index = firstBlock; index <= lastBlock; index++) {
      const start = Math.max(0, index * blockSize - offset);
      const end = Math.min(totalTokens, (index + 1) * blockSize - offset);
      const pieces: BlockPiece[] = [];
      while (fileIndex < files.length - 1 && manifestFiles[fileIndex].end <= start) fileIndex++;
      for (let fi = fileIndex; fi < files.length && manifestFiles[fi].start < end; fi++) {
        const file = files[fi];
        const pieceStart = Math.max(start, file.startToken);
        const pieceEnd = Math.min(end, manifestFiles[fi].end);
        if (pieceEnd <= pieceStart) continue; // a file with no tokens
        pieces.push(piece(fi, file, pieceStart, pieceEnd));
      }
      blocks.push({ index, start, end, pieces });
    }
  }
  return { version: 1, blockSize, offset, totalTokens, files: manifestFiles, blocks };
}

function piece(fileIndex: number, file: LaidOutFile, start: number, end: number): BlockPiece {
  const from = start - file.startToken;
  const to = end - file.startToken;
  const { start: lineStart, end: lineEnd } = file.tokenLines;
  let first = Infinity;
  let last = -Infinity;
  for (let t = from; t < to; t++) {
    if (lineEnd[t] < 1) continue; // header only
    first = Math.min(first, Math.max(1, lineStart[t]));
    last = Math.max(last, lineEnd[t]);
  }
  const clamp = (line: number) => Math.min(Math.max(line, 1), Math.max(file.lineCount, 1));
  return {
    file: fileIndex,
    start,
    end,
    headerTokens: countHeaderTokens(file.tokenLines, from, to),
    lines: first === Infinity ? null : [clamp(first), clamp(last)],
  };
}

function countHeaderTokens(lines: TokenLines, from: number, to: number): number {
  let n = 0;
  for (let t = from; t < to && lines.start[t] === 0; t++) n++;
  return n;
}
