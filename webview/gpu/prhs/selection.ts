// The block sets every selector builds from: budget, sinks and recency window, the depth
// schedule's reach, the ranking of scored blocks, top-k and the CIS core. Port of
// native/prhs/selection.cc (same order of operations, same tie-breaking).

import type { AttentionSettings } from '../../../src/trace/attention';
import { logAdd, NEG_INF } from './logMath';

const blocksOf = (context: number, blockSize: number) => Math.ceil(context / blockSize);
const clamp = (x: number, lo: number, hi: number) => Math.min(Math.max(x, lo), hi);

/** Blocks one KV head may read per step: ceil(budget tokens / block size), at least 1, at most all. */
export function budgetBlocks(p: AttentionSettings, context: number, blockSize: number): number {
  const tokens = p.budgetTokens > 0 ? p.budgetTokens : Math.ceil(p.budget * context);
  return clamp(Math.ceil(tokens / blockSize), 1, blocksOf(context, blockSize));
}

/** Sinks (blocks holding the first p.sinks positions) and the recency window (the last p.window). */
export function sinkWindowMask(p: AttentionSettings, context: number, blockSize: number): Uint8Array {
  const nb = blocksOf(context, blockSize);
  const mask = new Uint8Array(nb);
  const sinkEnd = Math.min(nb, blocksOf(Math.min(p.sinks, context), blockSize));
  for (let b = 0; b < sinkEnd; b++) mask[b] = 1;
  if (p.window > 0) {
    const first = Math.floor(Math.max(0, context - p.window) / blockSize);
    for (let b = first; b < nb; b++) mask[b] = 1;
  }
  return mask;
}

/** StreamingLLM with the same budget: the sink blocks, then the most recent blocks up to k in all. */
export function streamingMask(p: AttentionSettings, context: number, blockSize: number, k: number): Uint8Array {
  const nb = blocksOf(context, blockSize);
  const mask = new Uint8Array(nb);
  const sinkEnd = Math.min(nb, k, blocksOf(Math.min(p.sinks, context), blockSize));
  for (let b = 0; b < sinkEnd; b++) mask[b] = 1;
  for (let b = nb - 1, left = k - sinkEnd; b >= sinkEnd && left > 0; b--, left--) mask[b] = 1;
  return mask;
}

/** Depth schedule P_l(t): positions before this are no candidates at `layer` (0: all are). */
export function depthFloor(p: AttentionSettings, layer: number, nLayers: number, context: number): number {
  if (!p.depthSchedule) return 0;
  const start = p.depthStartLayer >= 0 ? p.depthStartLayer : Math.trunc(nLayers / 2);
  if (layer < start || nLayers <= start) return 0;
  const exponent = (p.depthAlpha * (layer - start)) / (nLayers - start);
  return Math.floor((1 - Math.pow(p.depthPhi, exponent)) * context);
}

/**
 * Candidate blocks sorted by Σ_g exp(logMass[g][b] - lse_g), best first; ties go to the more
 * recent block. logMass is [groups][nBlocks].
 */
export function rankBlocks(logMass: Float64Array, groups: number, nBlocks: number, candidate: Uint8Array): number[] {
  const score = new Float64Array(nBlocks);
  for (let g = 0; g < groups; g++) {
    const o = g * nBlocks;
    let lse = NEG_INF;
    for (let b = 0; b < nBlocks; b++) if (candidate[b]) lse = logAdd(lse, logMass[o + b]);
    if (lse === NEG_INF) continue;
    for (let b = 0; b < nBlocks; b++) if (candidate[b]) score[b] += Math.exp(logMass[o + b] - lse);
  }
  const ranked: number[] = [];
  for (let b = 0; b < nBlocks; b++) if (candidate[b]) ranked.push(b);
  const before = (a: number, b: number) => score[a] > score[b] || (score[a] === score[b] && a > b);
  return ranked.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
}

export function topK(ranked: number[], count: number): number[] {
  return ranked.slice(0, clamp(count, 0, ranked.length));
}

/** CIS: each of the top-m ranked blocks with its ±r neighbours (candidates only), then the rest of the ranking, until `count`. */
export function cisCore(ranked: number[], candidate: Uint8Array, count: number, m: number, r: number): number[] {
  const core: number[] = [];
  if (count <= 0) return core;
  const taken = new Uint8Array(candidate.length);
  const take = (b: number) => {
    if (b < 0 || b >= candidate.length || !candidate[b] || taken[b] || core.length >= count) return;
    taken[b] = 1;
    core.push(b);
  };
  for (let i = 0; i < Math.min(m, ranked.length); i++) {
    take(ranked[i]);
    for (let o = 1; o <= r; o++) {
      take(ranked[i] - o);
      take(ranked[i] + o);
    }
  }
  for (const b of ranked) take(b);
  return core;
}
