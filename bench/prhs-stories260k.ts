// PrHS and its baselines on stories260K's real attention at its 512-token context, 25% budget:
// per mode, agreement of the next token with dense attention (teacher-forced on dense's greedy
// tokens, so every step compares the same history), total variation of the next-token
// distribution, exact and certified dropped mass, effective budget, scoring passes per token.
//   node --import tsx bench/prhs-stories260k.ts
// Writes bench/results/prhs-stories260k.json and .md (commit, date). Quality figures only: no timings.
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { addonPath } from '../src/engine/process';
import { readModelSpec } from '../src/model/loader';
import type { NativeAddon } from '../src/model/native';
import { Sampler } from '../src/model/sampling';
import { TextTokenizer } from '../src/model/tokenizer';
import { decode, totalVariation, type DecodeRun } from '../src/eval/decode';
import { ATTENTION_DEFAULTS, type AttentionSettings } from '../src/trace/attention';

const MODEL_DIR = join('..', 'shared', 'models', 'stories260K', 'hf');
const CONTEXT = 512;
const NEW_TOKENS = 64;
const PROMPT_TOKENS = CONTEXT - NEW_TOKENS;
const BLOCK = 16;

const addon = createRequire(join(process.cwd(), 'package.json'))(addonPath()) as NativeAddon;
const model = addon.loadModel(readModelSpec(MODEL_DIR, { threads: 1, kvBlockSize: BLOCK, contextTokens: CONTEXT }));
const tokenizer = TextTokenizer.load(MODEL_DIR);

/** A 448-token TinyStories-like prompt: the model's own sampled continuation of "Once upon a time". */
function storyPrompt(seed: number): number[] {
  const ids = tokenizer.encode('Once upon a time', { addSpecialTokens: true });
  const sampler = new Sampler({ temperature: 1, topP: 0.9, seed });
  const seq = model.newSequence();
  try {
    let logits = model.forward(seq, Int32Array.from(ids), 'last');
    while (ids.length < PROMPT_TOKENS) {
      const next = sampler.sample(logits);
      ids.push(next);
      logits = model.forward(seq, Int32Array.of(next), 'last');
    }
  } finally {
    model.freeSequence(seq);
  }
  return ids;
}

// Sinks 4 tokens, window 32 tokens (2 blocks): stories260K's context is short, so the window is
// kept small enough to leave the budget room for selection. Same for every mode.
const base: AttentionSettings = { ...ATTENTION_DEFAULTS, budget: 0.25, window: 32, audit: true };
const variants: { name: string; settings: AttentionSettings }[] = [
  { name: 'dense (PrHS code path, budget 1)', settings: { ...base, mode: 'dense' } },
  { name: 'oracle top-k', settings: { ...base, mode: 'oracle' } },
  { name: 'Quest', settings: { ...base, mode: 'quest' } },
  { name: 'StreamingLLM', settings: { ...base, mode: 'streaming' } },
  { name: 'PrHS defaults (τ 0.8, R 16, int8 certificate)', settings: { ...base, mode: 'prhs' } },
  { name: 'PrHS defaults, minmax certificate', settings: { ...base, mode: 'prhs', keyBound: 'minmax' } },
  { name: 'PrHS int8, layer groups of 5', settings: { ...base, mode: 'prhs', keyBound: 'int8', layerGroup: 5 } },
  { name: 'PrHS int8, groups of 5, no audit certificates', settings: { ...base, mode: 'prhs', keyBound: 'int8', layerGroup: 5, certifyEvery: 0 } },
  { name: 'PrHS int8, groups of 5, τ 0.5, R 32', settings: { ...base, mode: 'prhs', keyBound: 'int8', layerGroup: 5, tau: 0.5, maxReuse: 32 } },
  { name: 'PrHS int8, groups of 5, τ 0.5, R 32, certify every 32', settings: { ...base, mode: 'prhs', keyBound: 'int8', layerGroup: 5, tau: 0.5, maxReuse: 32, certifyEvery: 32 } },
  { name: 'PrHS int8, groups of 5, τ 0.3, R 64, certify every 32', settings: { ...base, mode: 'prhs', keyBound: 'int8', layerGroup: 5, tau: 0.3, maxReuse: 64, certifyEvery: 32 } },
  { name: 'PrHS int8, τ 0.5, R 32, certify every 32', settings: { ...base, mode: 'prhs', keyBound: 'int8', tau: 0.5, maxReuse: 32, certifyEvery: 32 } },
  { name: 'PrHS int8, groups of 5, τ 0.5, R 32, δ_target 0.02', settings: { ...base, mode: 'prhs', keyBound: 'int8', layerGroup: 5, tau: 0.5, maxReuse: 32, deltaTarget: 0.02 } },
  { name: 'PrHS defaults, no expansion (δ_target 1)', settings: { ...base, mode: 'prhs', deltaTarget: 1 } },
];

interface Row {
  mode: string;
  settings: AttentionSettings;
  agreement: number;
  meanTv: number;
  freeRunMatch: number;
  meanDelta: number;
  maxDelta: number;
  meanDeltaHat: number | null;
  maxDeltaHat: number | null;
  tightnessMedian: number | null;
  effectiveBudget: number;
  scoringPassesPerToken: number;
  certifyPassesPerToken: number;
  expansionRate: number;
  summaryBytesPerToken: number;
}

function stats(run: DecodeRun) {
  const heads = run.steps.flatMap((s) => s.layers.flat());
  const deltas = heads.map((h) => h.delta ?? 0);
  const certified = heads.filter((h) => h.deltaHat !== null);
  const ratios = certified.filter((h) => (h.delta ?? 0) > 1e-9).map((h) => h.deltaHat! / h.delta!).sort((a, b) => a - b);
  const c = run.counters!;
  return {
    meanDelta: deltas.reduce((a, b) => a + b, 0) / deltas.length,
    maxDelta: Math.max(...deltas),
    meanDeltaHat: certified.length ? certified.reduce((a, h) => a + h.deltaHat!, 0) / certified.length : null,
    maxDeltaHat: certified.length ? Math.max(...certified.map((h) => h.deltaHat!)) : null,
    tightnessMedian: ratios.length ? ratios[Math.floor(ratios.length / 2)] : null,
    effectiveBudget: c.entriesRead / c.entriesContext,
    scoringPassesPerToken: c.scoringPasses / c.steps,
    certifyPassesPerToken: c.certifyPasses / c.steps,
    expansionRate: c.certified ? c.expanded / c.certified : 0,
    summaryBytesPerToken: c.summaryBytes / c.steps,
  };
}

const prompts = [1, 2, 3].map(storyPrompt);
const rows: Row[] = [];
for (const v of variants) {
  const per = prompts.map((prompt) => {
    const dense = decode(model, prompt, null, { maxNewTokens: NEW_TOKENS, keepProbs: true });
    const forced = decode(model, prompt, v.settings, { maxNewTokens: NEW_TOKENS, forced: dense.ids, keepProbs: true });
    const free = decode(model, prompt, v.settings, { maxNewTokens: NEW_TOKENS });
    let match = 0;
    while (match < free.ids.length && free.ids[match] === dense.ids[match]) match++;
    return {
      agreement: forced.argmax.filter((t, i) => t === dense.argmax[i]).length / forced.argmax.length,
      meanTv: forced.probs.reduce((s, p, i) => s + totalVariation(p, dense.probs[i]), 0) / forced.probs.length,
      freeRunMatch: match / NEW_TOKENS,
      ...stats(forced),
    };
  });
  const mean = (f: (x: (typeof per)[number]) => number | null) => {
    const xs = per.map(f).filter((x): x is number => x !== null);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };
  const max = (f: (x: (typeof per)[number]) => number | null) => {
    const xs = per.map(f).filter((x): x is number => x !== null);
    return xs.length ? Math.max(...xs) : null;
  };
  rows.push({
    mode: v.name, settings: v.settings,
    agreement: mean((x) => x.agreement)!, meanTv: mean((x) => x.meanTv)!, freeRunMatch: mean((x) => x.freeRunMatch)!,
    meanDelta: mean((x) => x.meanDelta)!, maxDelta: max((x) => x.maxDelta)!,
    meanDeltaHat: mean((x) => x.meanDeltaHat), maxDeltaHat: max((x) => x.maxDeltaHat), tightnessMedian: mean((x) => x.tightnessMedian),
    effectiveBudget: mean((x) => x.effectiveBudget)!, scoringPassesPerToken: mean((x) => x.scoringPassesPerToken)!,
    certifyPassesPerToken: mean((x) => x.certifyPassesPerToken)!, expansionRate: mean((x) => x.expansionRate)!,
    summaryBytesPerToken: mean((x) => x.summaryBytesPerToken)!,
  });
  console.error(`${v.name}: agreement ${rows[rows.length - 1].agreement.toFixed(3)}`);
}

const f = (x: number | null, d = 3) => (x === null ? '–' : x.toFixed(d));
const table = [
  '| mode | agreement (teacher-forced) | free-run match | mean TV | mean δ | max δ | mean δ̂ | max δ̂ | δ̂÷δ median | effective budget | scoring passes / token | certificate passes / token | expansion rate | summary bytes / token |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.mode} | ${f(r.agreement)} | ${f(r.freeRunMatch)} | ${f(r.meanTv)} | ${f(r.meanDelta, 4)} | ${f(r.maxDelta)} | ${f(r.meanDeltaHat, 4)} | ${f(r.maxDeltaHat)} | ${f(r.tightnessMedian, 2)} | ${f(r.effectiveBudget)} | ${f(r.scoringPassesPerToken, 2)} | ${f(r.certifyPassesPerToken, 2)} | ${f(r.expansionRate)} | ${f(r.summaryBytesPerToken, 0)} |`),
].join('\n');
const commit = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim();
const dirty = execSync('git status --porcelain -- native/prhs src/eval src/trace bench/prhs-stories260k.ts', { encoding: 'utf8' }).trim() !== '';
const result = {
  bench: 'prhs-stories260k', date: new Date().toISOString(), commit, dirty,
  device: 'CPU (quality figures only; no timings)',
  model: 'stories260K (5 layers, 8 query heads, 4 KV heads, head dim 8)',
  setup: { context: CONTEXT, promptTokens: PROMPT_TOKENS, newTokens: NEW_TOKENS, kvBlockSize: BLOCK, prompts: 'model-sampled stories from "Once upon a time", seeds 1-3 (temperature 1, top-p 0.9)', questScoringPassesPerToken: 20 },
  rows,
};
writeFileSync(join('bench', 'results', 'prhs-stories260k.json'), JSON.stringify(result, null, 1) + '\n');
writeFileSync(join('bench', 'results', 'prhs-stories260k.md'), `# PrHS on stories260K (context 512, budget 25%, block 16)\n\ncommit ${commit}${dirty ? ' (with uncommitted changes)' : ''}, ${result.date}. Command: \`node --import tsx bench/prhs-stories260k.ts\`.\nMean over 3 prompts of ${PROMPT_TOKENS} model-sampled story tokens, ${NEW_TOKENS} decode steps each. Quest scores every (layer, KV head) every step: 20 passes per token.\n\n${table}\n`);
console.log(table);
