// Per-file KV segments (kvAssembly 'segments', docs/kv-cache.md) against a full prefill of the same
// prompt: the prompt is head ++ segments ++ question; the assembled sequence takes each segment's
// KV as prefilled right after the head alone, re-rotated to its place, with a fraction of each moved
// segment's tokens recomputed ('starts': its first tokens; 'spread': evenly spaced, a control;
// 'query': the blocks the question attends to most, measured by a probe run of the question). Then the question and a continuation (the full prefill's greedy tokens, fed to
// both: teacher-forced) run on both, and per position we compare the next-token distributions:
// top-1 agreement, KL(full ‖ assembled), total variation δ; plus the relative error of the
// repository's KV in the last layer, and the tokens an assembly from stored segments runs
// (recomputed) against the repository's tokens a prefill runs.
//
//   node --import tsx bench/samkv.ts [--model DIR] [--trials N] [--fractions 0,0.1,...] [--out NAME]
//   node --import tsx bench/samkv.ts --model DIR --repo REPO --question "..."   (real files, needs a tokenizer)
//   e.g. --repo bench/samkv-stories-repo --question "What did Lily have?" --out stories260K-repo
//
// Segments: by default each is the model's own sampled text after BOS (seeded; no tokenizer needed,
// so random-weight fixtures work too); with --repo, the files of a repository as the ask pipeline
// cuts them (src/context). Writes bench/results/samkv-<name>.json and .md. Quality only: no timings.
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { buildContext } from '../src/context';
import { addonPath } from '../src/engine/process';
import { recomputePositions, type RecomputePolicy, type SegmentLayout } from '../src/engine/kvSegments';
import { readModelSpec } from '../src/model/loader';
import type { NativeAddon } from '../src/model/native';
import { argmax, Sampler } from '../src/model/sampling';
import { contextTokenizer, questionPrompt } from '../src/qa/prompt';
import { tokenizerFor } from '../src/qa/ask';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const MODEL_DIR = option('model', join('..', 'shared', 'models', 'stories260K', 'hf'));
const TRIALS = Number(option('trials', '4'));
const FRACTIONS = option('fractions', '0,0.05,0.1,0.15,0.25,0.5,1').split(',').map(Number);
const SEGMENTS = Number(option('segments', '6'));
const SEGMENT_TOKENS = Number(option('segment-tokens', '56'));
const QUESTION_TOKENS = Number(option('question-tokens', '8'));
const CONTINUATION = Number(option('continuation', '24'));
const REPO = option('repo', '');
const QUESTION = option('question', 'What does this repository do?');
const BLOCK = 16;
const POLICIES: RecomputePolicy[] = ['starts', 'spread', 'query'];

const addon = createRequire(join(process.cwd(), 'package.json'))(addonPath()) as NativeAddon;
const spec = readModelSpec(MODEL_DIR, { threads: 0, kvBlockSize: BLOCK });
const CONTEXT = spec.contextTokens;
const model = addon.loadModel({ ...spec, kvBlocks: Math.ceil((6 * CONTEXT) / BLOCK) });
const vocab = spec.arch.vocabSize;
const name = option('out', basename(resolve(MODEL_DIR)) === 'hf' ? basename(resolve(MODEL_DIR, '..')) : basename(resolve(MODEL_DIR)));

interface Prompt {
  ids: number[];
  layout: SegmentLayout;
  /** The question: prefilled normally after the repository on both sides. */
  question: number[];
}

function bosId(): number {
  const config = JSON.parse(readFileSync(join(MODEL_DIR, 'config.json'), 'utf8'));
  return typeof config.bos_token_id === 'number' ? config.bos_token_id : 1;
}

/** `count` tokens the model samples after BOS (seeded): text in the model's own distribution. */
function sampled(count: number, seed: number): number[] {
  const sampler = new Sampler({ temperature: 1, topP: 0.9, seed });
  const seq = model.newSequence();
  const out: number[] = [];
  try {
    let logits = model.forward(seq, Int32Array.of(bosId()), 'last');
    while (out.length < count) {
      const next = sampler.sample(logits);
      out.push(next);
      logits = model.forward(seq, Int32Array.of(next), 'last');
    }
  } finally {
    model.freeSequence(seq);
  }
  return out;
}

function sampledPrompt(trial: number): Prompt {
  const head = [bosId()];
  const segments = Array.from({ length: SEGMENTS }, (_, i) => sampled(SEGMENT_TOKENS, 1000 * trial + i));
  const starts: number[] = [];
  const ids = [...head];
  for (const s of segments) {
    starts.push(ids.length);
    ids.push(...s);
  }
  return { ids, layout: { starts, end: ids.length }, question: sampled(QUESTION_TOKENS, 1000 * trial + 999) };
}

async function repoPrompt(): Promise<Prompt> {
  const tokenizer = tokenizerFor(MODEL_DIR);
  const { headIds, suffixIds } = questionPrompt(tokenizer, QUESTION);
  const ctx = await buildContext({
    root: REPO, tokenizer: contextTokenizer(tokenizer), blockSize: BLOCK, offset: headIds.length,
    budgetTokens: CONTEXT - headIds.length - suffixIds.length - CONTINUATION, recentFiles: [],
  });
  const layout = { starts: ctx.files.map((f) => headIds.length + f.startToken), end: headIds.length + ctx.ids.length };
  return { ids: [...headIds, ...ctx.ids], layout, question: suffixIds };
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  const out = new Float64Array(logits.length);
  const log = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - log;
  return out;
}

interface Compared { top1: number; kl: number; tv: number; tvMax: number }

/** Per-position comparison of two [rows][vocab] logits arrays, averaged. */
function compare(full: Float32Array, approx: Float32Array): Compared {
  const rows = full.length / vocab;
  let top1 = 0, kl = 0, tv = 0, tvMax = 0;
  for (let r = 0; r < rows; r++) {
    const a = full.subarray(r * vocab, (r + 1) * vocab), b = approx.subarray(r * vocab, (r + 1) * vocab);
    if (argmax(a) === argmax(b)) top1++;
    const la = logSoftmax(a), lb = logSoftmax(b);
    let k = 0, t = 0;
    for (let i = 0; i < vocab; i++) {
      const p = Math.exp(la[i]);
      k += p * (la[i] - lb[i]);
      t += Math.abs(p - Math.exp(lb[i]));
    }
    kl += k;
    tv += t / 2;
    tvMax = Math.max(tvMax, t / 2);
  }
  return { top1: top1 / rows, kl: kl / rows, tv: tv / rows, tvMax };
}

/** ‖a − b‖ / ‖b‖ over the last layer's keys and values of a span. */
function relativeError(a: Float32Array, b: Float32Array): number {
  const layerFloats = a.length / spec.arch.numLayers;
  let num = 0, den = 0;
  for (let i = a.length - layerFloats; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

function prefilled(ids: readonly number[]): number {
  const seq = model.newSequence();
  for (let start = 0; start < ids.length; start += 256) model.forward(seq, Int32Array.from(ids.slice(start, start + 256)), 'none');
  return seq;
}

interface Row { policy: RecomputePolicy; fraction: number; recomputed: number; repository: number; top1: number; kl: number; tv: number; tvMax: number; kvError: number }

function trial(prompt: Prompt): Row[] {
  const { ids, layout } = prompt;
  const head = layout.starts[0];
  // The reference: a full prefill, then the question, then its greedy continuation, teacher-forced.
  const full = prefilled(ids);
  const fullKv = model.exportKv(full, head, layout.end - head);
  const probe = model.forkSequence(full);
  let last = model.forward(probe, Int32Array.from(prompt.question), 'last');
  const continuation: number[] = [];
  while (continuation.length < CONTINUATION) {
    continuation.push(argmax(last));
    last = model.forward(probe, Int32Array.of(continuation[continuation.length - 1]), 'last');
  }
  model.freeSequence(probe);
  const tail = Int32Array.from([...prompt.question, ...continuation]);
  const expected = model.forward(full, tail, 'all');
  model.freeSequence(full);

  // Each segment prefilled after the head alone, once.
  const headSeq = prefilled(ids.slice(0, head));
  const spans = layout.starts.map((start, i) => {
    const end = i + 1 < layout.starts.length ? layout.starts[i + 1] : layout.end;
    const own = model.forkSequence(headSeq);
    model.forward(own, Int32Array.from(ids.slice(start, end)), 'none');
    const span = model.exportKv(own, head, end - start);
    model.freeSequence(own);
    return span;
  });

  const rows: Row[] = [];
  for (const policy of POLICIES) {
    for (const fraction of FRACTIONS) {
      const seq = model.forkSequence(headSeq);
      for (const span of spans) model.appendRotated(seq, span, head);
      // 'query': the question's attention over the assembled (not yet recomputed) KV picks the blocks.
      const query = policy === 'query' ? { mass: model.attentionMass(seq, Int32Array.from(prompt.question)), block: BLOCK } : undefined;
      const positions = recomputePositions(layout, fraction, policy, query);
      if (positions.length) model.recompute(seq, Int32Array.from(positions, (p) => ids[p]), Int32Array.from(positions));
      const kvError = relativeError(model.exportKv(seq, head, layout.end - head), fullKv);
      const got = model.forward(seq, tail, 'all');
      model.freeSequence(seq);
      rows.push({ policy, fraction, recomputed: positions.length, repository: layout.end - head, ...compare(expected, got), kvError });
    }
  }
  model.freeSequence(headSeq);
  return rows;
}

async function main(): Promise<void> {
  if (REPO && !existsSync(join(MODEL_DIR, 'tokenizer.json'))) throw new Error(`--repo needs a tokenizer: ${MODEL_DIR}/tokenizer.json is missing`);
  const prompts = REPO ? [await repoPrompt()] : Array.from({ length: TRIALS }, (_, t) => sampledPrompt(t));
  for (const p of prompts) {
    if (p.ids.length + p.question.length + CONTINUATION > CONTEXT) throw new Error(`the prompt (${p.ids.length + p.question.length} + ${CONTINUATION}) does not fit the context of ${CONTEXT}`);
  }
  const all = prompts.map(trial);
  // Mean over prompts of each (policy, fraction) row.
  const rows = all[0].map((r, i) => {
    const mean = (k: keyof Row) => all.reduce((s, t) => s + (t[i][k] as number), 0) / all.length;
    return {
      policy: r.policy, fraction: r.fraction,
      recomputedShare: mean('recomputed') / mean('repository'),
      tokensSaved: 1 - mean('recomputed') / mean('repository'),
      top1: mean('top1'), kl: mean('kl'), tv: mean('tv'), tvMax: Math.max(...all.map((t) => t[i].tvMax)), kvErrorLastLayer: mean('kvError'),
    };
  });

  const commit = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim();
  const dirty = execSync('git status --porcelain -- native/model native/kv native/cpu native/addon.cc src/engine/kvSegments.ts bench/samkv.ts', { encoding: 'utf8' }).trim() !== '';
  const setup = REPO
    ? { source: 'repository files', repo: REPO, question: QUESTION, files: prompts[0].layout.starts.length, repositoryTokens: prompts[0].layout.end - prompts[0].layout.starts[0] }
    : { source: 'model-sampled segments after BOS', trials: TRIALS, segments: SEGMENTS, segmentTokens: SEGMENT_TOKENS, questionTokens: QUESTION_TOKENS };
  const result = {
    bench: 'samkv', model: MODEL_DIR, date: new Date().toISOString(), commit, dirty,
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`, backend: 'cpu',
    setup: { ...setup, continuation: CONTINUATION, kvBlockSize: BLOCK, context: CONTEXT },
    rows,
  };
  const out = join('bench', 'results', `samkv-${name}`);
  writeFileSync(`${out}.json`, JSON.stringify(result, null, 1) + '\n');
  const f = (x: number, d = 4) => (x < 1e-3 && x > 0 ? x.toExponential(2) : x.toFixed(d));
  const table = [
    '| policy | recompute | tokens run (of repository) | top-1 agreement | KL(full‖assembled) | TV δ mean | TV δ max | KV rel. error (last layer) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.policy} | ${r.fraction} | ${(100 * r.recomputedShare).toFixed(1)}% | ${(100 * r.top1).toFixed(1)}% | ${f(r.kl)} | ${f(r.tv)} | ${f(r.tvMax)} | ${f(r.kvErrorLastLayer)} |`),
  ].join('\n');
  writeFileSync(`${out}.md`, `# KV segments vs a full prefill: ${name}\n\ncommit ${commit}${dirty ? ' (with uncommitted changes)' : ''}, ${result.date}, ${result.machine}, CPU backend. ` +
    `Command: \`node --import tsx bench/samkv.ts ${process.argv.slice(2).join(' ')}\`.\n\nSetup: ${JSON.stringify(result.setup)}.\n` +
    `Per row: mean over prompts and over the ${REPO ? 'question\'s' : QUESTION_TOKENS} question tokens + ${CONTINUATION} continuation tokens (teacher-forced on the full prefill's greedy tokens). ` +
    `"tokens run" = recomputed tokens / repository tokens when every segment is already stored (a full prefill runs 100%; tokens saved = 100% − that); 'query' also runs the question once more as its probe (not counted here).\n\n${table}\n`);
  console.log(table);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
