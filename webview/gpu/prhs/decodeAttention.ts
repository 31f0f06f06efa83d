// Sparse decode attention's selection for the WebGPU engine: per decode step, layer and KV head,
// which KV blocks the newest token reads (PrHS or a baseline), with the certified dropped mass δ̂
// and the expansion that keeps δ̂ <= deltaTarget. A port of native/prhs/decode_attention.cc so
// both engines select the same blocks for the same keys and queries; see that file for the method.
// Here only the selection runs (on the CPU, in doubles, from mirrored keys); the GPU then attends
// over the chosen blocks (ops/sparse_attention.wgsl).

import type { NativeAttentionCounters } from '../../../src/model/native';
import type { AttentionSettings } from '../../../src/trace/attention';
import type { SelectionSource } from '../../../src/trace/types';
import type { LayerKeys } from './blocks';
import { buildSketch, exactLogMass, LseAccumulator, minmaxLogBound, sketchLogBound, type KeySketch } from './bounds';
import { logAdd, massShare, NEG_INF } from './logMath';
import { budgetBlocks, cisCore, depthFloor, rankBlocks, sinkWindowMask, streamingMask, topK } from './selection';

/** What one KV head of one layer did at the latest step (native HeadRecord / NativeHeadSelection). */
export interface HeadRecord {
  /** Blocks read, ascending. */
  blocks: number[];
  source: SelectionSource;
  /** Certified bound (max over the head's query heads); null: not certified. */
  deltaHat: number | null;
  /** Exact dropped mass (audit); null: not audited. */
  delta: number | null;
  expanded: number;
  entriesRead: number;
}

/** Same counters as the native engine's, so eval and the trace read either alike. */
export type Counters = NativeAttentionCounters;

interface Anchor {
  valid: boolean;
  step: number;
  q: Float64Array;
  core: number[];
  fromLeader: boolean;
  scoredAt: number;
}

/** Per-query-head log-mass bounds of blocks, [group][nBlocks], filled on demand. */
class BoundTable {
  readonly logMass: Float64Array;
  readonly done: Uint8Array;
  constructor(groups: number, nBlocks: number) {
    this.logMass = new Float64Array(groups * nBlocks).fill(NEG_INF);
    this.done = new Uint8Array(nBlocks);
  }
}

function cosine(a: Float64Array, b: Float64Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

export class DecodeSelection {
  private stepIndex = -1;
  private readonly group: number;
  private readonly anchors: Anchor[];
  private readonly records: HeadRecord[];
  private readonly sketches = new Map<number, KeySketch>();
  readonly counters: Counters = { steps: 0, selections: 0, scoringPasses: 0, certifyPasses: 0, certified: 0, expanded: 0, entriesRead: 0, entriesContext: 0, summaryBytes: 0 };

  constructor(readonly p: AttentionSettings, readonly nLayers: number, readonly nHeads: number, readonly nKvHeads: number, readonly headDim: number) {
    if (nLayers <= 0 || nKvHeads <= 0 || headDim <= 0 || nHeads % nKvHeads !== 0) {
      throw new RangeError(`sparse attention: bad model shape (${nHeads} heads, ${nKvHeads} KV heads)`);
    }
    if (p.layerGroup < 1) throw new RangeError('sparse attention: layerGroup must be >= 1');
    this.group = nHeads / nKvHeads;
    const slots = nLayers * nKvHeads;
    this.anchors = Array.from({ length: slots }, () => ({ valid: false, step: 0, q: new Float64Array(0), core: [], fromLeader: false, scoredAt: -1 }));
    this.records = Array.from({ length: slots }, () => emptyRecord());
  }

  get step(): number {
    return this.stepIndex;
  }

  /** The latest step's records, [layer][kvHead]. */
  layers(): HeadRecord[][] {
    return Array.from({ length: this.nLayers }, (_, l) => this.records.slice(l * this.nKvHeads, (l + 1) * this.nKvHeads));
  }

  /**
   * Chooses the blocks the last position of `kv` reads at `layer`, per KV head; q [nHeads, headDim]
   * after RoPE. Call for layers 0..nLayers-1 in order once per generated token.
   */
  select(layer: number, q: Float32Array, kv: LayerKeys): HeadRecord[] {
    const p = this.p;
    if (layer < 0 || layer >= this.nLayers) throw new RangeError(`sparse attention: layer ${layer} out of range`);
    if (layer === 0) {
      this.stepIndex++;
      this.counters.steps++;
    }
    const ctx = kv.context;
    const nb = kv.nBlocks;
    const bs = kv.blockSize;
    const d = this.headDim;
    const G = this.group;
    const scale = 1 / Math.sqrt(d);
    const k = budgetBlocks(p, ctx, bs);
    const summaryBytes = 2 * d * 4;
    const out: HeadRecord[] = [];

    for (let h = 0; h < this.nKvHeads; h++) {
      const slot = layer * this.nKvHeads + h;
      const rec = emptyRecord();
      const anchor = this.anchors[slot];

      // q of the group's query heads, [group][headDim], scaled by 1/sqrt(headDim).
      const qs = new Float64Array(G * d);
      for (let i = 0; i < G * d; i++) qs[i] = q[h * G * d + i] * scale;

      const minmax = new BoundTable(G, nb);
      const sketched = new BoundTable(G, nb);
      const certificateBounds = p.keyBound === 'minmax' ? minmax : sketched;
      const bound = (t: BoundTable, which: Uint8Array) => {
        for (let b = 0; b < nb; b++) {
          if (!which[b] || t.done[b]) continue;
          t.done[b] = 1;
          const s = t === sketched ? this.sketch(layer, h, b, kv) : null;
          this.counters.summaryBytes += summaryBytes + (s ? Math.ceil((s.fill * d * s.bits) / 8) + d * 4 : 0);
          for (let g = 0; g < G; g++) {
            t.logMass[g * nb + b] = s ? sketchLogBound(qs, g * d, s, kv, b, h) : minmaxLogBound(qs, g * d, kv, b, h);
          }
        }
      };
      let exact: Float64Array | null = null;
      const exactMasses = (): Float64Array => {
        if (exact) return exact;
        exact = new Float64Array(G * nb);
        for (let g = 0; g < G; g++) for (let b = 0; b < nb; b++) exact[g * nb + b] = exactLogMass(qs, g * d, kv, b, h);
        return exact;
      };

      let sel: Uint8Array = new Uint8Array(nb);
      let source: SelectionSource = 'dense';
      switch (p.mode) {
        case 'dense':
          sel.fill(1);
          break;
        case 'streaming':
          sel = streamingMask(p, ctx, bs, k);
          source = 'fixed';
          break;
        case 'oracle': {
          for (const b of topK(rankBlocks(exactMasses(), G, nb, new Uint8Array(nb).fill(1)), k)) sel[b] = 1;
          source = 'scored';
          break;
        }
        case 'quest':
        case 'prhs': {
          const fixed = sinkWindowMask(p, ctx, bs);
          source = p.mode === 'quest' ? 'scored' : this.choosePrhs(layer, h, qs, anchor);
          if (source === 'scored') {
            const floor = p.mode === 'prhs' ? depthFloor(p, layer, this.nLayers, ctx) : 0;
            const candidate = new Uint8Array(nb);
            for (let b = 0; b < nb; b++) candidate[b] = !fixed[b] && (b + 1) * bs > floor ? 1 : 0;
            bound(minmax, candidate);
            const ranked = rankBlocks(minmax.logMass, G, nb, candidate);
            const free = Math.max(0, k - fixed.reduce((a, x) => a + x, 0));
            const m = p.dilateTop > 0 ? p.dilateTop : Math.max(1, Math.trunc(free / 3));
            anchor.core = p.mode === 'quest' ? topK(ranked, free) : cisCore(ranked, candidate, free, m, p.dilation);
            // The anchor's sinks and window stay in the reused set until the next anchor.
            for (let b = 0; b < nb; b++) if (fixed[b]) anchor.core.push(b);
            anchor.valid = true;
            anchor.step = this.stepIndex;
            anchor.q = qs;
            anchor.fromLeader = false;
            anchor.scoredAt = this.stepIndex;
          }
          sel = fixed;
          for (const b of anchor.core) if (b < nb) sel[b] = 1;
          break;
        }
      }
      if (source === 'scored') this.counters.scoringPasses++;

      const acc = Array.from({ length: G }, () => new LseAccumulator());
      const attendBlock = (b: number) => {
        for (let g = 0; g < G; g++) acc[g].addBlock(qs, g * d, kv, b, h);
      };
      for (let b = 0; b < nb; b++) if (sel[b]) attendBlock(b);

      // Baselines certify only in strict mode (a certificate is PrHS's own work, not theirs).
      const certify = p.strict ||
        (p.mode === 'prhs' && (source === 'scored' || (p.certifyEvery > 0 && this.stepIndex % p.certifyEvery === 0)));
      if (p.mode === 'dense') {
        rec.deltaHat = 0;
      } else if (certify) {
        const unselected = new Uint8Array(nb);
        for (let b = 0; b < nb; b++) unselected[b] = sel[b] ? 0 : 1;
        let hadBounds = true;
        for (let b = 0; b < nb; b++) hadBounds = hadBounds && (!unselected[b] || certificateBounds.done[b] === 1);
        bound(certificateBounds, unselected);
        if (!hadBounds && source !== 'scored') this.counters.certifyPasses++;
        const ub = certificateBounds.logMass;
        const deltaHat = new Float64Array(G);
        const recompute = () => {
          for (let g = 0; g < G; g++) {
            let lseOut = NEG_INF;
            for (let b = 0; b < nb; b++) if (!sel[b]) lseOut = logAdd(lseOut, ub[g * nb + b]);
            deltaHat[g] = massShare(acc[g].lse(), lseOut);
          }
        };
        recompute();
        // Expansion: add the unselected block with the largest bound for the worst query head.
        while (p.mode === 'prhs' && maxOf(deltaHat) > p.deltaTarget) {
          const worst = argmaxFirst(deltaHat);
          let best = -1;
          for (let b = 0; b < nb; b++) {
            if (!sel[b] && (best < 0 || ub[worst * nb + b] > ub[worst * nb + best])) best = b;
          }
          if (best < 0) break;
          sel[best] = 1;
          attendBlock(best);
          rec.expanded++;
          recompute();
        }
        rec.deltaHat = maxOf(deltaHat);
        this.counters.certified++;
        if (rec.expanded > 0) {
          this.counters.expanded++;
          if (source !== 'scored') anchor.valid = false; // the reused set was not good enough: re-score next step
        }
      }
      if (p.audit || p.mode === 'oracle') {
        const ex = exactMasses();
        let worst = 0;
        for (let g = 0; g < G; g++) {
          let lseOut = NEG_INF;
          for (let b = 0; b < nb; b++) if (!sel[b]) lseOut = logAdd(lseOut, ex[g * nb + b]);
          worst = Math.max(worst, massShare(acc[g].lse(), lseOut));
        }
        rec.delta = worst;
        if (p.mode === 'oracle') rec.deltaHat = worst; // exact scores: the bound is the value
      }
      if (p.mode === 'dense' && p.audit) rec.delta = 0;

      rec.source = source;
      for (let b = 0; b < nb; b++) {
        if (!sel[b]) continue;
        rec.blocks.push(b);
        rec.entriesRead += kv.fill(b);
      }
      this.counters.selections++;
      this.counters.entriesRead += rec.entriesRead;
      this.counters.entriesContext += ctx;
      this.records[slot] = rec;
      out.push(rec);
    }
    return out;
  }

  private choosePrhs(layer: number, kvHead: number, q: Float64Array, a: Anchor): SelectionSource {
    const leader = layer - (layer % this.p.layerGroup);
    if (leader !== layer) {
      const lead = this.anchors[leader * this.nKvHeads + kvHead];
      if (lead.scoredAt === this.stepIndex) {
        a.valid = true;
        a.step = this.stepIndex;
        a.q = q;
        a.core = [...lead.core];
        a.fromLeader = true;
        return 'shared';
      }
    }
    if (a.valid && this.stepIndex - a.step < this.p.maxReuse && cosine(q, a.q) >= this.p.tau) return a.fromLeader ? 'shared' : 'reused';
    return 'scored';
  }

  /** Low-bit key copy of a block; full blocks never change while the sequence grows, so they are cached. */
  private sketch(layer: number, kvHead: number, b: number, kv: LayerKeys): KeySketch {
    const bits = this.p.keyBound === 'int4' ? 4 : 8;
    if (kv.fill(b) < kv.blockSize) return buildSketch(kv, b, kvHead, bits);
    const key = (b * this.nLayers + layer) * this.nKvHeads + kvHead;
    let s = this.sketches.get(key);
    if (!s) {
      s = buildSketch(kv, b, kvHead, bits);
      this.sketches.set(key, s);
    }
    return s;
  }
}

function emptyRecord(): HeadRecord {
  return { blocks: [], source: 'dense', deltaHat: null, delta: null, expanded: 0, entriesRead: 0 };
}

function maxOf(a: Float64Array): number {
  let m = a[0];
  for (let i = 1; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}

/** First index of the largest value (std::max_element). */
function argmaxFirst(a: Float64Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

