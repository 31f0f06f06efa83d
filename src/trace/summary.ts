// The trace summary, derived from its steps alone, so a reader can recompute and check it.
import type { TraceStep, TraceSummary } from './types';

/** KV entries the ranges cover at a step whose context ends at `position` (the tail block is partial). */
export function entriesRead(blocks: [number, number][], position: number, kvBlockSize: number): number {
  const contextTokens = position + 1;
  let n = 0;
  for (const [a, b] of blocks) n += Math.min(b * kvBlockSize, contextTokens) - a * kvBlockSize;
  return n;
}

function meanMax(xs: number[]): [number | null, number | null] {
  if (xs.length === 0) return [null, null];
  return [xs.reduce((s, x) => s + x, 0) / xs.length, Math.max(...xs)];
}

export function summarize(steps: TraceStep[], kvBlockSize: number): TraceSummary {
  let budgetSum = 0;
  let scored = 0;
  let certifiedOnReuse = 0;
  let certified = 0;
  let expandedCount = 0;
  const deltaHats: number[] = [];
  const deltas: number[] = [];
  for (const s of steps) {
    let read = 0;
    let heads = 0;
    for (const l of s.layers) {
      for (const h of l.heads) {
        heads++;
        read += entriesRead(h.blocks, s.position, kvBlockSize);
        if (h.source === 'scored') scored++;
        if (h.deltaHat !== null) {
          certified++;
          deltaHats.push(h.deltaHat);
          if (h.source !== 'scored') certifiedOnReuse++;
          if (h.expanded > 0) expandedCount++;
        }
        if (h.delta !== null) deltas.push(h.delta);
      }
    }
    if (heads > 0) budgetSum += read / (heads * (s.position + 1));
  }
  const n = steps.length;
  const [meanDeltaHat, maxDeltaHat] = meanMax(deltaHats);
  const [meanDelta, maxDelta] = meanMax(deltas);
  return {
    steps: n,
    effectiveBudget: n ? budgetSum / n : 0,
    scoringPassesPerToken: n ? scored / n : 0,
    certifyPassesPerToken: n ? certifiedOnReuse / n : 0,
    meanDeltaHat, maxDeltaHat, meanDelta, maxDelta,
    expansionRate: certified ? expandedCount / certified : 0,
  };
}
