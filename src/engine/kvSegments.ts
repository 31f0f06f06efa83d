// Per-file KV segments (docs/kv-cache.md "Segments", the SamKV idea, arXiv 2508.11661): each file's
// tokens are prefilled on their own right after the prompt head and kept; a prompt is assembled from
// them in any order (keys re-rotated to their new positions, native/model/segments.cc), then a few
// tokens of each moved segment are run again with attention over everything before them: its first
// ones, or the blocks the question attends to most.
// Behind the `kvAssembly: 'segments'` setting: approximate, measured by bench/samkv.ts.

import { createHash } from 'node:crypto';
import type { NativeModel } from '../model/native';
import { PrefillPieces } from './prefillPieces';

/** Which tokens of the assembled segments are run again (see recomputePositions). */
export type RecomputePolicy = 'starts' | 'spread' | 'query';

/** A prompt's repository part cut into files: `starts` ascending, the last segment ends at `end`. */
export interface SegmentLayout {
  /** Prompt positions where each segment starts; starts[0] is the end of the head. */
  starts: number[];
  end: number;
}

/** Where a query-aware choice looks: the question's attention mass per position (attentionMass), cut into runs of `block`. */
export interface QueryMass {
  mass: Float32Array;
  block: number;
}

/**
 * Prompt positions to recompute, ascending, among segments that start at or after `from` and do not
 * sit where they were prefilled (right after the head): ceil(fraction × length) tokens per segment,
 *  - 'starts': its first tokens (a moved segment's first tokens saw the least of their context; EPIC
 *    recomputes chunk starts for that reason);
 *  - 'spread': evenly spaced tokens (a control for bench/samkv.ts);
 *  - 'query': the same total, as the blocks (runs of `query.block` inside a segment) with the most
 *    attention mass from the question, over all moved segments (SamKV: choose with the query, then
 *    recompute locally what was chosen).
 */
export function recomputePositions(layout: SegmentLayout, fraction: number, policy: RecomputePolicy = 'starts', query?: QueryMass, from = 0): number[] {
  if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`recompute fraction ${fraction} must lie in [0, 1]`);
  if (policy === 'query' && !query) throw new Error("recompute policy 'query' needs the question's attention mass");
  const head = layout.starts[0];
  const out: number[] = [];
  const runs: { start: number; end: number; score: number }[] = [];
  let budget = 0;
  layout.starts.forEach((start, i) => {
    const end = i + 1 < layout.starts.length ? layout.starts[i + 1] : layout.end;
    const length = end - start;
    if (start === head || length === 0 || start < from) return;
    const count = Math.min(length, Math.ceil(fraction * length));
    if (policy === 'query' && query) {
      budget += count;
      for (let r = start; r < end; r += query.block) {
        const runEnd = Math.min(end, r + query.block);
        let score = 0;
        for (let p = r; p < runEnd; p++) score += query.mass[p];
        runs.push({ start: r, end: runEnd, score });
      }
      return;
    }
    for (let j = 0; j < count; j++) out.push(policy === 'starts' ? start + j : start + Math.floor((j * length) / count));
  });
  if (policy !== 'query') return out;
  runs.sort((a, b) => b.score - a.score || a.start - b.start);
  for (const run of runs) {
    if (budget <= 0) break;
    const take = Math.min(budget, run.end - run.start);
    for (let p = run.start; p < run.start + take; p++) out.push(p);
    budget -= take;
  }
  return out.sort((a, b) => a - b);
}

/** Checks a layout against a prompt of `promptLength` ids. Returns an error message, or null. */
export function layoutError(layout: SegmentLayout, promptLength: number): string | null {
  const { starts, end } = layout;
  if (starts.length === 0) return 'kvAssembly.starts is empty';
  for (let i = 1; i < starts.length; i++) if (starts[i] < starts[i - 1]) return 'kvAssembly.starts must be ascending';
  if (starts[starts.length - 1] > end) return 'kvAssembly.end is before the last segment start';
  if (end >= promptLength) return `kvAssembly.end ${end} must leave the prompt's last token (of ${promptLength}) to be prefilled`;
  return null;
}

/** A segment's KV as prefilled right after the head (exportKv's layout), with its token count. */
interface StoredSegment {
  span: Float32Array;
  tokens: number;
}

/** Segments by (head ids, segment ids), least recently used dropped over `maxBytes`. */
export class SegmentStore {
  private readonly entries = new Map<string, StoredSegment>();
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  static key(head: readonly number[], segment: readonly number[]): string {
    const h = createHash('sha256');
    h.update(Int32Array.from(head));
    h.update(`|${head.length}|`);
    h.update(Int32Array.from(segment));
    return h.digest('hex');
  }

  get(key: string): StoredSegment | undefined {
    const e = this.entries.get(key);
    if (e) {
      this.entries.delete(key); // most recently used last
      this.entries.set(key, e);
    }
    return e;
  }

  set(key: string, entry: StoredSegment): void {
    const old = this.entries.get(key);
    if (old) this.bytes -= old.span.byteLength;
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.bytes += entry.span.byteLength;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes || k === key) break;
      this.entries.delete(k);
      this.bytes -= e.span.byteLength;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

export interface AssemblyResult {
  /** Positions [0, layout.end) of `seq` hold the assembled KV. */
  seq: number;
  /** Tokens run through the model: the head, segments not in the store, recomputed tokens. */
  prefilled: number;
  recomputed: number;
  segmentsReused: number;
  segmentsPrefilled: number;
}

export interface AssemblyOptions {
  fraction: number;
  policy?: RecomputePolicy;
  /** For 'query': the question's ids (what follows `layout.end`) and the block size of the choice. */
  question?: readonly number[];
  block?: number;
  /** The size of each prefill's forward calls; between calls `between` runs (progress, cancel: it may throw). */
  pieces?: PrefillPieces;
  between?: (prefilled: number) => Promise<void>;
  /** A sequence whose first `keep` positions already hold `ids`' (a segment start or the head end): it is
   *  extended when `keep` reaches the head, else freed. */
  base?: { seq: number; keep: number };
}

/**
 * Builds the KV of ids[0, layout.end) from segments: the head is prefilled (or kept from `base`), each
 * segment taken from the store or prefilled after the head alone, appended with its keys re-rotated,
 * then the chosen tokens recomputed. On error every sequence it made or was given is freed.
 */
export async function assembleSegments(model: NativeModel, ids: readonly number[], layout: SegmentLayout, store: SegmentStore, options: AssemblyOptions): Promise<AssemblyResult> {
  const head = layout.starts[0];
  const pieces = options.pieces ?? new PrefillPieces();
  const result: AssemblyResult = { seq: -1, prefilled: 0, recomputed: 0, segmentsReused: 0, segmentsPrefilled: 0 };
  const headIds = ids.slice(0, head);
  const made: number[] = [];
  const forward = async (seq: number, tokens: readonly number[]) => {
    for (let start = 0; start < tokens.length;) {
      const piece = tokens.slice(start, start + pieces.next);
      const began = performance.now();
      model.forward(seq, Int32Array.from(piece), 'none');
      pieces.took(piece.length, performance.now() - began);
      start += piece.length;
      result.prefilled += piece.length;
      await options.between?.(result.prefilled);
    }
  };
  try {
    let headSeq = -1;
    let keep = options.base?.keep ?? 0;
    const kept = options.base && keep >= head ? options.base.seq : -1;
    // The head's KV (never changed by an assembly): shared from the kept sequence, else prefilled.
    const headSequence = async () => {
      if (headSeq < 0) {
        headSeq = kept >= 0 ? model.forkSequence(kept) : model.newSequence();
        made.push(headSeq);
        if (kept >= 0) model.truncateSequence(headSeq, head);
        else await forward(headSeq, headIds);
      }
      return headSeq;
    };
    let seq: number;
    if (kept >= 0) {
      seq = kept;
      made.push(seq);
      model.truncateSequence(seq, keep);
    } else {
      if (options.base) model.freeSequence(options.base.seq);
      seq = model.forkSequence(await headSequence());
      made.push(seq);
      keep = head;
    }
    for (let i = 0; i < layout.starts.length; i++) {
      const start = layout.starts[i], end = i + 1 < layout.starts.length ? layout.starts[i + 1] : layout.end;
      if (end <= keep || end === start) continue;
      if (start < keep) throw new Error(`assembleSegments: kept positions end at ${keep}, inside the segment ${start}..${end}`);
      const segmentIds = ids.slice(start, end);
      const key = SegmentStore.key(headIds, segmentIds);
      let stored = store.get(key);
      if (stored) result.segmentsReused++;
      else {
        const own = model.forkSequence(await headSequence());
        made.push(own);
        await forward(own, segmentIds);
        stored = { span: model.exportKv(own, head, segmentIds.length), tokens: segmentIds.length };
        model.freeSequence(made.pop()!);
        store.set(key, stored);
        result.segmentsPrefilled++;
      }
      model.appendRotated(seq, stored.span, head);
    }
    // Only appended segments are recomputed: kept positions are already as a previous assembly left them.
    let query: QueryMass | undefined;
    if (options.policy === 'query') {
      if (!options.question?.length) throw new Error("recompute policy 'query' needs the question's ids");
      query = { mass: model.attentionMass(seq, Int32Array.from(options.question)), block: options.block ?? 16 };
      result.prefilled += options.question.length;
    }
    const positions = recomputePositions(layout, options.fraction, options.policy, query, keep);
    if (positions.length) {
      model.recompute(seq, Int32Array.from(positions, (p) => ids[p]), Int32Array.from(positions));
      result.prefilled += positions.length;
      result.recomputed = positions.length;
    }
    if (headSeq >= 0) model.freeSequence(headSeq);
    result.seq = seq;
    return result;
  } catch (e) {
    for (const s of made) {
      try { model.freeSequence(s); } catch { /* already freed */ }
    }
    throw e;
  }
}
