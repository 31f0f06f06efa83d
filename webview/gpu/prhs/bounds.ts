// Per-block log-mass of one query head's scores: exact, and certified upper bounds from the
// block's key min/max or a low-bit key copy. Port of native/prhs/block_bounds.cc and key_sketch.cc
// (same order of operations). q is scaled by 1/sqrt(headDim), held in doubles, [headDim] at qOff.

import type { LayerKeys } from './blocks';
import { logAdd, NEG_INF } from './logMath';

export function dot(q: Float64Array, qOff: number, k: Float32Array, kOff: number, d: number): number {
  let s = 0;
  for (let i = 0; i < d; i++) s += q[qOff + i] * k[kOff + i];
  return s;
}

/** Covers double rounding in a bound against the exact score: a relative 1e-9 of Σ|q_d|·|k|max. */
export function boundSlack(q: Float64Array, qOff: number, kv: LayerKeys, sOff: number): number {
  let s = 0;
  for (let i = 0; i < kv.headDim; i++) s += Math.abs(q[qOff + i]) * Math.max(Math.abs(kv.keyMin[sOff + i]), Math.abs(kv.keyMax[sOff + i]));
  return 1e-9 * s + 1e-12;
}

/** log Σ_j exp(q·k_j) over block b's keys for KV head h. */
export function exactLogMass(q: Float64Array, qOff: number, kv: LayerKeys, b: number, h: number): number {
  let out = NEG_INF;
  for (let j = 0; j < kv.fill(b); j++) out = logAdd(out, dot(q, qOff, kv.keys, kv.keyOffset(b, h, j), kv.headDim));
  return out;
}

/** Every q·k_j ≤ Σ_d max(q_d·min_d, q_d·max_d), so the block's mass is at most fill·exp(that). */
export function minmaxLogBound(q: Float64Array, qOff: number, kv: LayerKeys, b: number, h: number): number {
  const s = kv.summaryOffset(b, h);
  let ub = 0;
  for (let i = 0; i < kv.headDim; i++) ub += Math.max(q[qOff + i] * kv.keyMin[s + i], q[qOff + i] * kv.keyMax[s + i]);
  return Math.log(kv.fill(b)) + ub + boundSlack(q, qOff, kv, s);
}

/** A low-bit copy of one block's keys for one KV head (see native/prhs/key_sketch.h). */
export interface KeySketch {
  fill: number;
  bits: number;
  /** [fill][headDim] */
  codes: Uint8Array;
  /** [headDim] largest |k - grid value|, rounded up to f32 */
  err: Float32Array;
}

function gridStep(lo: number, hi: number, levels: number): number {
  return (hi - lo) / (levels - 1);
}

/** C's lround: nearest integer, halves away from zero. */
function lround(x: number): number {
  return Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
}

/** The next f32 above a finite f32 `x` (C's nextafterf(x, +big)). */
function nextUpF32(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (x === 0) u[0] = 1;
  else if (x > 0) u[0]++;
  else u[0]--;
  return f[0];
}

export function buildSketch(kv: LayerKeys, b: number, h: number, bits: number): KeySketch {
  const d = kv.headDim;
  const fill = kv.fill(b);
  const s = kv.summaryOffset(b, h);
  const levels = 1 << bits;
  const codes = new Uint8Array(fill * d);
  const err = new Float64Array(d);
  for (let j = 0; j < fill; j++) {
    const kOff = kv.keyOffset(b, h, j);
    for (let i = 0; i < d; i++) {
      const lo = kv.keyMin[s + i];
      const step = gridStep(kv.keyMin[s + i], kv.keyMax[s + i], levels);
      const k = kv.keys[kOff + i];
      const c = step > 0 ? Math.min(Math.max(lround((k - lo) / step), 0), levels - 1) : 0;
      codes[j * d + i] = c;
      err[i] = Math.max(err[i], Math.abs(k - (lo + step * c)));
    }
  }
  const stored = new Float32Array(d);
  for (let i = 0; i < d; i++) {
    let e = Math.fround(err[i]);
    if (e < err[i]) e = nextUpF32(e);
    stored[i] = e;
  }
  return { fill, bits, codes, err: stored };
}

/** Upper bound of log Σ_j exp(q·k_j) over the sketched block. */
export function sketchLogBound(q: Float64Array, qOff: number, sk: KeySketch, kv: LayerKeys, b: number, h: number): number {
  const d = kv.headDim;
  const s = kv.summaryOffset(b, h);
  const levels = 1 << sk.bits;
  let base = boundSlack(q, qOff, kv, s);
  const w = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    base += q[qOff + i] * kv.keyMin[s + i] + Math.abs(q[qOff + i]) * sk.err[i];
    w[i] = q[qOff + i] * gridStep(kv.keyMin[s + i], kv.keyMax[s + i], levels);
  }
  let out = NEG_INF;
  for (let j = 0; j < sk.fill; j++) {
    let ub = base;
    for (let i = 0; i < d; i++) ub += w[i] * sk.codes[j * d + i];
    out = logAdd(out, ub);
  }
  return out;
}

/** log-sum-exp of one query head's scores over the blocks added (HeadAccumulator's lse, no values). */
export class LseAccumulator {
  private max = NEG_INF;
  private sum = 0;

  addBlock(q: Float64Array, qOff: number, kv: LayerKeys, b: number, h: number): void {
    for (let j = 0; j < kv.fill(b); j++) {
      const s = dot(q, qOff, kv.keys, kv.keyOffset(b, h, j), kv.headDim);
      if (s > this.max) {
        const rescale = this.max === NEG_INF ? 0 : Math.exp(this.max - s);
        this.sum *= rescale;
        this.max = s;
      }
      this.sum += Math.exp(s - this.max);
    }
  }

  lse(): number {
    return this.max === NEG_INF ? NEG_INF : this.max + Math.log(this.sum);
  }
}
