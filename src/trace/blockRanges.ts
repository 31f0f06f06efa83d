// The compact form of a block set: sorted half-open ranges [start, end).
import type { BlockRanges } from './types';

/** Ranges from block ids in any order (duplicates allowed). */
export function toRanges(ids: Iterable<number>): BlockRanges {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const out: BlockRanges = [];
  for (const id of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === id) last[1] = id + 1;
    else out.push([id, id + 1]);
  }
  return out;
}

/** Block ids of ranges, ascending. */
export function fromRanges(r: BlockRanges): number[] {
  const out: number[] = [];
  for (const [a, b] of r) for (let i = a; i < b; i++) out.push(i);
  return out;
}

export function rangesSize(r: BlockRanges): number {
  return r.reduce((n, [a, b]) => n + (b - a), 0);
}
