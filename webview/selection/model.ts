// What the KV selection panel shows, computed from a selection trace (src/trace/types.ts):
// files (grouped by folder) × layers, coloured by how often the files' blocks were selected,
// over the whole answer or at one generated token. Pure functions, shared with the extension
// (citations) and unit-tested in Chromium with the page.
import type { BlockRanges, SelectionTrace } from '../../src/trace/types';

export interface FileRow {
  /** Repository-relative path. */
  file: string;
  folder: string;
  /** Prompt blocks holding some of the file's tokens, ascending. */
  blocks: number[];
}

export interface StepSummary {
  step: number;
  text: string;
  /** Largest certified δ̂ over layers and KV heads; null when no head was certified this step. */
  deltaHat: number | null;
  /** How many (layer, KV head) selections were scored / reused or shared / fixed or dense. */
  scored: number;
  reused: number;
  other: number;
}

export interface LineRange {
  startLine: number;
  endLine: number;
}

export interface TraceView {
  files: FileRow[];
  numLayers: number;
  steps: StepSummary[];
  /** freq[fileIndex][layer] over all steps: share of (step, KV head) selections touching the file. */
  total: number[][];
}

/** Files named in the manifest (prompt parts like "<question>" left out), sorted by folder then name. */
export function fileRows(trace: SelectionTrace): FileRow[] {
  const byFile = new Map<string, Set<number>>();
  for (const b of trace.manifest) {
    for (const s of b.spans) {
      if (s.source.startsWith('<')) continue;
      let set = byFile.get(s.source);
      if (!set) byFile.set(s.source, (set = new Set()));
      set.add(b.block);
    }
  }
  return [...byFile.entries()]
    .map(([file, blocks]) => ({ file, folder: folderOf(file), blocks: [...blocks].sort((a, b) => a - b) }))
    .sort((a, b) => (a.folder === b.folder ? a.file.localeCompare(b.file) : a.folder.localeCompare(b.folder)));
}

export function folderOf(file: string): string {
  const i = file.lastIndexOf('/');
  return i < 0 ? '.' : file.slice(0, i);
}

function inRanges(ranges: BlockRanges, block: number): boolean {
  for (const [start, end] of ranges) {
    if (block < start) return false;
    if (block < end) return true;
  }
  return false;
}

function touches(ranges: BlockRanges, blocks: number[]): boolean {
  return blocks.some((b) => inRanges(ranges, b));
}

/** freq[file][layer] at one step: share of that layer's KV heads whose selection touched the file. */
export function stepFrequency(trace: SelectionTrace, files: FileRow[], step: number): number[][] {
  const s = trace.steps[step];
  const out = files.map(() => new Array<number>(trace.model.numLayers).fill(0));
  if (!s) return out;
  for (const layer of s.layers) {
    if (!layer.heads.length || layer.layer >= trace.model.numLayers) continue;
    files.forEach((f, i) => {
      let n = 0;
      for (const h of layer.heads) if (touches(h.blocks, f.blocks)) n++;
      out[i][layer.layer] = n / layer.heads.length;
    });
  }
  return out;
}

export function buildView(trace: SelectionTrace): TraceView {
  const files = fileRows(trace);
  const total = files.map(() => new Array<number>(trace.model.numLayers).fill(0));
  const steps: StepSummary[] = [];
  for (let i = 0; i < trace.steps.length; i++) {
    const f = stepFrequency(trace, files, i);
    f.forEach((row, r) => row.forEach((v, l) => (total[r][l] += v / trace.steps.length)));
    const s = trace.steps[i];
    let deltaHat: number | null = null;
    let scored = 0, reused = 0, other = 0;
    for (const layer of s.layers) {
      for (const h of layer.heads) {
        if (h.deltaHat !== null) deltaHat = Math.max(deltaHat ?? 0, h.deltaHat);
        if (h.source === 'scored') scored++;
        else if (h.source === 'reused' || h.source === 'shared') reused++;
        else other++;
      }
    }
    steps.push({ step: s.step, text: s.text, deltaHat, scored, reused, other });
  }
  return { files, numLayers: trace.model.numLayers, steps, total };
}

/**
 * The line ranges of `file` inside blocks selected at `step` (any layer, any KV head), merged;
 * with step = null, the blocks selected most often over the answer (the citation view).
 */
export function selectedLines(trace: SelectionTrace, file: string, step: number | null): LineRange[] {
  const counts = blockCounts(trace, step);
  const ranges: LineRange[] = [];
  for (const b of trace.manifest) {
    if (!counts.get(b.block)) continue;
    for (const s of b.spans) if (s.source === file) ranges.push({ startLine: s.startLine, endLine: s.endLine });
  }
  return mergeRanges(ranges);
}

/** How many (step, layer, KV head) selections included each block, for one step or all. */
export function blockCounts(trace: SelectionTrace, step: number | null): Map<number, number> {
  const counts = new Map<number, number>();
  const steps = step === null ? trace.steps : trace.steps.slice(step, step + 1);
  for (const s of steps) {
    for (const layer of s.layers) {
      for (const h of layer.heads) {
        for (const [start, end] of h.blocks) {
          for (let b = start; b < end && b < trace.manifest.length; b++) counts.set(b, (counts.get(b) ?? 0) + 1);
        }
      }
    }
  }
  return counts;
}

export function mergeRanges(ranges: LineRange[]): LineRange[] {
  const sorted = [...ranges].sort((a, b) => a.startLine - b.startLine);
  const out: LineRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.startLine <= last.endLine + 1) last.endLine = Math.max(last.endLine, r.endLine);
    else out.push({ ...r });
  }
  return out;
}
