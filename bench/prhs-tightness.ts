// How tight the certified dropped mass is (δ̂ ÷ exact δ) and what it costs, per key bound:
// per-dimension min/max, int8 and int4 key copies with exactly bounded rounding error.
//   1. Synthetic keys with trained-model structure at head dim 128 (outlier channels, low
//      effective rank with slowly drifting content, RoPE, a sink), 2048 positions, blocks of 32
//      (test/native/prhs-harness.cc, built with g++).
//   2. stories260K's real attention (head dim 8), 448-token prompts, blocks of 16.
// Both at a 25% budget with a certificate on every step; δ_target 1 gives the raw ratio (no
// expansion), 0.05 shows how far expansion must go. Bytes: key-summary/key-copy bytes read per
// certificate against the float32 keys of the blocks bounded.
//   node --import tsx bench/prhs-tightness.ts   → bench/results/prhs-tightness.{json,md}
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { buildPrhsHarness, runPrhsHarness } from '../test/native/prhs-harness';
import { addonPath } from '../src/engine/process';
import { readModelSpec } from '../src/model/loader';
import type { NativeAddon } from '../src/model/native';
import { decode } from '../src/eval/decode';
import { ATTENTION_DEFAULTS, type KeyBound } from '../src/trace/attention';

interface Row {
  workload: string;
  mode: string;
  keyBound: string;
  deltaTarget: number;
  meanDelta: number;
  maxDelta: number;
  meanDeltaHat: number;
  ratioMedian: number | null;
  ratioP90: number | null;
  expansionRate: number;
  effectiveBudget: number;
  /** Summary + key-copy bytes per bounded block ÷ that block's float32 key bytes. */
  boundBytesPerKeyByte: number | null;
}

const BOUND_BYTES = (keyBound: string, d: number, block: number) =>
  2 * d * 4 + (keyBound === 'int8' ? block * d + d * 4 : keyBound === 'int4' ? (block * d) / 2 + d * 4 : 0);

const rows: Row[] = [];
for (const r of runPrhsHarness(buildPrhsHarness(), 'tightness')) {
  rows.push({
    workload: r.workload, mode: r.mode, keyBound: r.mode === 'prhs' || r.mode === 'quest' ? r.keyBound : '–', deltaTarget: r.deltaTarget,
    meanDelta: r.meanDelta, maxDelta: r.maxDelta, meanDeltaHat: r.meanDeltaHat,
    ratioMedian: r.ratioMedian < 0 ? null : r.ratioMedian, ratioP90: r.ratioP90 < 0 ? null : r.ratioP90,
    expansionRate: r.certified ? r.expanded / r.certified : 0, effectiveBudget: r.effectiveBudget,
    boundBytesPerKeyByte: r.mode === 'prhs' || r.mode === 'quest' ? BOUND_BYTES(r.keyBound, r.headDim, r.blockSize) / (r.blockSize * r.headDim * 4) : null,
  });
}

// stories260K: its own sampled stories as prompts (as in bench/prhs-stories260k.ts, greedy here).
const addon = createRequire(join(process.cwd(), 'package.json'))(addonPath()) as NativeAddon;
const model = addon.loadModel(readModelSpec(join('..', 'shared', 'models', 'stories260K', 'hf'), { threads: 1, kvBlockSize: 16 }));
const start = [1, 403, 407, 261, 378];
const prompt = [...start, ...decode(model, start, null, { maxNewTokens: 443 }).ids];
for (const keyBound of ['minmax', 'int8', 'int4'] as KeyBound[]) {
  for (const deltaTarget of [1, 0.05]) {
    const run = decode(model, prompt, { ...ATTENTION_DEFAULTS, mode: 'prhs', budget: 0.25, window: 32, keyBound, deltaTarget, strict: true, audit: true }, { maxNewTokens: 64 });
    const heads = run.steps.flatMap((s) => s.layers.flat());
    const ratios = heads.filter((h) => (h.delta ?? 0) > 1e-9).map((h) => h.deltaHat! / h.delta!).sort((a, b) => a - b);
    const c = run.counters!;
    rows.push({
      workload: 'stories260K-d8', mode: 'prhs', keyBound, deltaTarget,
      meanDelta: heads.reduce((s, h) => s + h.delta!, 0) / heads.length, maxDelta: Math.max(...heads.map((h) => h.delta!)),
      meanDeltaHat: heads.reduce((s, h) => s + h.deltaHat!, 0) / heads.length,
      ratioMedian: ratios.length ? ratios[Math.floor(ratios.length / 2)] : null, ratioP90: ratios.length ? ratios[Math.floor(ratios.length * 0.9)] : null,
      expansionRate: c.expanded / c.certified, effectiveBudget: c.entriesRead / c.entriesContext,
      boundBytesPerKeyByte: BOUND_BYTES(keyBound, 8, 16) / (16 * 8 * 4),
    });
  }
}
model.dispose();

const f = (x: number | null, d = 3) => (x === null ? '–' : x.toFixed(d));
const table = [
  '| workload | mode | key bound | δ_target | mean δ | max δ | mean δ̂ | δ̂÷δ median | δ̂÷δ p90 | expansion rate | effective budget | bound bytes ÷ fp32 key bytes |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.workload} | ${r.mode} | ${r.keyBound} | ${r.deltaTarget} | ${f(r.meanDelta, 4)} | ${f(r.maxDelta)} | ${f(r.meanDeltaHat, 4)} | ${f(r.ratioMedian, 2)} | ${f(r.ratioP90, 2)} | ${f(r.expansionRate)} | ${f(r.effectiveBudget)} | ${f(r.boundBytesPerKeyByte)} |`),
].join('\n');
const commit = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim();
const dirty = execSync('git status --porcelain -- native/prhs test/native/prhs-harness.cc bench/prhs-tightness.ts', { encoding: 'utf8' }).trim() !== '';
const date = new Date().toISOString();
writeFileSync(join('bench', 'results', 'prhs-tightness.json'), JSON.stringify({ bench: 'prhs-tightness', date, commit, dirty, device: 'CPU (no timings)', rows }, null, 1) + '\n');
writeFileSync(join('bench', 'results', 'prhs-tightness.md'), `# Certificate tightness (δ̂ ÷ δ) and cost per key bound\n\ncommit ${commit}${dirty ? ' (with uncommitted changes)' : ''}, ${date}. Command: \`node --import tsx bench/prhs-tightness.ts\`. Budget 25%, certificate on every step, exact δ audited.\n\n${table}\n`);
console.log(table);
