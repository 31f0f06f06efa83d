// Citations for an answer: the files and line ranges whose KV blocks the model selected most
// often while generating it (from a sparse selection trace); when nothing was selected over
// anything else (dense attention), the files the conversation names, else the context's files.
import type { Citation } from '../../webview/chat/messages';
import { blockCounts, mergeRanges } from '../../webview/selection/model';
import type { SelectionTrace } from '../trace/types';

const MAX_CITATIONS = 6;

/** Ranked citations; none when the trace never chose between blocks (dense or window-only attention). */
export function citationsFromTrace(trace: SelectionTrace, max = MAX_CITATIONS): Citation[] {
  const chose = trace.steps.some((s) => s.layers.some((l) => l.heads.some((h) => h.source === 'scored' || h.source === 'reused' || h.source === 'shared')));
  if (!chose) return [];
  const counts = blockCounts(trace, null);
  let total = 0;
  for (const c of counts.values()) total += c;
  if (total === 0) return [];
  // Rank blocks by selections; keep the best blocks' file spans, then merge neighbours per file.
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const perFile = new Map<string, { ranges: { startLine: number; endLine: number }[]; count: number }>();
  for (const [block, count] of ranked) {
    const spans = trace.manifest[block]?.spans.filter((s) => !s.source.startsWith('<')) ?? [];
    for (const s of spans) {
      let f = perFile.get(s.source);
      if (!f) {
        if (perFile.size >= max) continue;
        perFile.set(s.source, (f = { ranges: [], count: 0 }));
      }
      f.ranges.push({ startLine: s.startLine, endLine: s.endLine });
      f.count += count / spans.length;
    }
  }
  const out: Citation[] = [];
  for (const [file, f] of perFile) {
    // Cite the merged run holding the file's most selected block (ranges were pushed best first).
    const best = f.ranges[0];
    const r = mergeRanges(f.ranges).find((m) => m.startLine <= best.startLine && best.startLine <= m.endLine) ?? best;
    out.push({ file, startLine: r.startLine, endLine: r.endLine, weight: Math.min(1, f.count / total), source: 'attention' });
  }
  return out.sort((a, b) => b.weight - a.weight).slice(0, max);
}

/** Files of the context whose path or base name appears in `text`. */
export function citationsFromMentions(text: string, files: string[], max = MAX_CITATIONS): Citation[] {
  const out: Citation[] = [];
  for (const file of files) {
    const base = file.slice(file.lastIndexOf('/') + 1);
    if (text.includes(file) || (base.length >= 4 && new RegExp(`(^|[^\\w.-])${escapeRegExp(base)}($|[^\\w-])`).test(text))) {
      out.push({ file, startLine: 1, endLine: 1, weight: 0, source: 'mention' });
      if (out.length >= max) break;
    }
  }
  return out;
}

/** The context's files, in prompt order, whole: what the model read when nothing ranks them. */
export function citationsFromContext(files: { path: string; lines: number }[], max = MAX_CITATIONS): Citation[] {
  return files.slice(0, max).map((f) => ({ file: f.path, startLine: 1, endLine: Math.max(1, f.lines), weight: 0, source: 'context' as const }));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
