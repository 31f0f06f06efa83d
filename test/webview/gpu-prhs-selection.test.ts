// The WebGPU engine's sparse decode selection (webview/gpu/prhs, run on the CPU beside the GPU)
// against the CPU reference's (native/prhs DecodeAttention, compiled with g++ into
// gpu-prhs-reference.cc): on the same keys and queries, every step, layer and KV head must read
// the same blocks, from the same source, with the same expansion and certified δ̂, for every mode.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ATTENTION_DEFAULTS, type AttentionSettings } from '../../src/trace/attention';
import { LayerKeys } from '../../webview/gpu/prhs/blocks';
import { DecodeSelection } from '../../webview/gpu/prhs/decodeAttention';
import { buildReference, runReference, selectionDifferences, type SelectionRun } from './gpu-prhs-reference';

const SHAPE = { layers: 4, heads: 4, kvHeads: 2, headDim: 16, blockSize: 8, prompt: 203, steps: 24 };

/** Deterministic standard-normal-ish numbers (sum of uniforms from mulberry32). */
function normals(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => uniform() + uniform() + uniform() + uniform() - 2;
}

/**
 * Keys where a few blocks per (layer, KV head) point along a direction the queries share, queries
 * that drift along it step by step (so the cosine gate sometimes holds and sometimes fails).
 */
function workload(seed: number): { keys: Float32Array; values: Float32Array; queries: Float32Array } {
  const { layers, heads, kvHeads, headDim: d, blockSize, prompt, steps } = SHAPE;
  const n = prompt + steps;
  const rand = normals(seed);
  const keys = new Float32Array(layers * n * kvHeads * d);
  const values = new Float32Array(keys.length);
  const direction = Float32Array.from({ length: layers * kvHeads * d }, rand);
  for (let l = 0; l < layers; l++) {
    for (let t = 0; t < n; t++) {
      const hot = Math.floor(t / blockSize) % 7 === 3;
      for (let h = 0; h < kvHeads; h++) {
        for (let i = 0; i < d; i++) {
          const at = ((l * n + t) * kvHeads + h) * d + i;
          keys[at] = rand() + (hot ? 1.5 * direction[(l * kvHeads + h) * d + i] : 0);
          values[at] = rand();
        }
      }
    }
  }
  const queries = new Float32Array(steps * layers * heads * d);
  for (let s = 0; s < steps; s++) {
    const drift = s % 9 < 6 ? 0.2 : 2.5;
    for (let l = 0; l < layers; l++) {
      for (let q = 0; q < heads; q++) {
        const h = Math.floor(q / (heads / kvHeads));
        for (let i = 0; i < d; i++) queries[((s * layers + l) * heads + q) * d + i] = 2 * direction[(l * kvHeads + h) * d + i] + drift * rand();
      }
    }
  }
  return { keys, values, queries };
}

function ours(p: AttentionSettings, w: ReturnType<typeof workload>): SelectionRun {
  const { layers, heads, kvHeads, headDim: d, blockSize, prompt, steps } = SHAPE;
  const n = prompt + steps;
  const row = kvHeads * d;
  const mirrors = Array.from({ length: layers }, (_, l) => {
    const m = new LayerKeys(n, kvHeads, d, blockSize);
    m.append(w.keys.subarray(l * n * row, (l * n + prompt) * row));
    return m;
  });
  const selection = new DecodeSelection(p, layers, heads, kvHeads, d);
  const out = [];
  for (let s = 0; s < steps; s++) {
    for (let l = 0; l < layers; l++) {
      mirrors[l].append(w.keys.subarray((l * n + prompt + s) * row, (l * n + prompt + s + 1) * row));
      selection.select(l, w.queries.subarray((s * layers + l) * heads * d, (s * layers + l + 1) * heads * d), mirrors[l]);
    }
    out.push({ step: selection.step, layers: selection.layers() });
  }
  return { steps: out, counters: selection.counters };
}

const CASES: [string, Partial<AttentionSettings>][] = [
  ['prhs (defaults, small window)', { mode: 'prhs', window: 16 }],
  ['prhs strict, int8 key copies, audited', { mode: 'prhs', window: 16, strict: true, keyBound: 'int8', audit: true, deltaTarget: 0.02 }],
  ['prhs int4, cross-layer groups of 2, depth schedule', { mode: 'prhs', window: 16, keyBound: 'int4', layerGroup: 2, depthSchedule: true, budget: 0.3 }],
  ['prhs tight budget in tokens, no dilation, certify every 3', { mode: 'prhs', window: 8, budgetTokens: 40, dilation: 0, certifyEvery: 3, tau: 0.95 }],
  ['quest', { mode: 'quest', window: 16 }],
  ['oracle', { mode: 'oracle', window: 16 }],
  ['streaming', { mode: 'streaming', window: 16 }],
  ['dense, audited', { mode: 'dense', audit: true }],
];

describe('sparse decode selection: WebGPU engine vs CPU reference', () => {
  let exe: string;
  before(() => (exe = buildReference()));
  after(() => rmSync(dirname(exe), { recursive: true, force: true }));

  const w = workload(11);
  for (const [name, settings] of CASES) {
    test(name, (t) => {
      const p: AttentionSettings = { ...ATTENTION_DEFAULTS, ...settings };
      const ref = runReference(exe, p, SHAPE, w.keys, w.values, w.queries);
      const got = ours(p, w);
      assert.deepEqual(selectionDifferences(got.steps, ref.steps), []);
      assert.deepEqual(got.counters, ref.counters, 'counters');
      const sources = new Map<string, number>();
      let expanded = 0;
      for (const r of got.steps.flatMap((s) => s.layers.flat())) {
        sources.set(r.source, (sources.get(r.source) ?? 0) + 1);
        expanded += r.expanded;
      }
      t.diagnostic(`sources ${JSON.stringify(Object.fromEntries(sources))}, blocks added by certificates ${expanded}`);
    });
  }
});
