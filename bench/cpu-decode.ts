// CPU decode speed on stories260K: our native engine against llama.cpp (the prebuilt CPU build in
// node-llama-cpp), in one run, same prompt ids, same number of tokens, greedy. A baseline, no target.
//
//   npm run bench:cpu                      (defaults: 256 tokens, 7 repetitions, threads 1 and 2)
//   npm run bench:cpu -- --tokens 128 --reps 5 --threads 1,2
//
// Decode speed = (tokens - 1) / time from the first generated token to the last: the prompt's
// prefill (which yields the first token) is not timed, every later token is one forward of one
// token plus greedy sampling. Both engines run at each thread setting, interleaved repetition by
// repetition so that load from other processes hits both alike; the figure per setting is the
// median (a setting far slower than its engine's best is measured once: see main). The headline ratio compares each engine's best setting (llama.cpp decodes this tiny
// model fastest on one thread: recipes/README.md). Both engines also must produce the same greedy
// tokens (same weights: HF safetensors for ours, the F32 GGUF for llama.cpp).
//
// Also recorded: process CPU time (all threads) per token over the same span, which a busy
// machine disturbs less than wall time; its ratio is llama.cpp's CPU time over ours.
//
// Writes bench/results/cpu-decode-<YYYY-MM-DD>.json (device, date, commit, figures, ratios).

import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { readModelSpec } from '../src/model/loader';
import type { NativeAddon, NativeModel } from '../src/model/native';

const MODELS = join('..', 'shared', 'models', 'stories260K');
const HF_DIR = join(MODELS, 'hf');
const GGUF = join(MODELS, 'stories260K-f32.gguf');
const GOLDEN = join(MODELS, 'golden-transformers.json');

interface Options {
  tokens: number;
  reps: number;
  threads: number[];
}

interface Run {
  tokensPerSecond: number;
  /** Process CPU time (all threads) per decoded token: less sensitive than wall time to other load. */
  cpuMicrosPerToken: number;
  ids: number[];
}

/** One engine at one thread setting: decodes `tokens` new tokens greedily after `prompt`. */
interface Decoder {
  engine: 'repo-lens' | 'llama.cpp';
  threads: number;
  decode(prompt: number[], tokens: number): Promise<Run>;
  dispose(): Promise<void>;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { tokens: 256, reps: 7, threads: [1, 2] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--tokens') options.tokens = positiveInt(flag, value);
    else if (flag === '--reps') options.reps = positiveInt(flag, value);
    else if (flag === '--threads') options.threads = (value ?? '').split(',').map((t) => positiveInt(flag, t));
    else throw new Error(`unknown argument ${flag} (expected --tokens N, --reps N, --threads 1,2)`);
  }
  return options;
}

function positiveInt(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, got ${value}`);
  return n;
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

function ourDecoder(addon: NativeAddon, threads: number): Decoder {
  const model: NativeModel = addon.loadModel(readModelSpec(HF_DIR, { threads }));
  return {
    engine: 'repo-lens',
    threads,
    async decode(prompt, tokens) {
      const seq = model.newSequence();
      const ids = [argmax(model.forward(seq, Int32Array.from(prompt), 'last'))];
      const clock = startClock();
      while (ids.length < tokens) ids.push(argmax(model.forward(seq, Int32Array.of(ids[ids.length - 1]), 'last')));
      const run = clock.stop(tokens - 1);
      model.freeSequence(seq);
      return { ...run, ids };
    },
    async dispose() {
      model.dispose();
    },
  };
}

async function llamaDecoders(threadSettings: number[]): Promise<{ decoders: Decoder[]; close(): Promise<void> }> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const maxThreads = Math.max(...threadSettings);
  const llama = await getLlama({ gpu: false, build: 'never', maxThreads, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: GGUF });
  const decoders: Decoder[] = [];
  for (const threads of threadSettings) {
    const context = await model.createContext({ contextSize: model.trainContextSize, threads, batchSize: 512 });
    if (context.currentThreads !== threads) throw new Error(`llama.cpp context runs ${context.currentThreads} threads, asked for ${threads}`);
    const sequence = context.getSequence();
    decoders.push({
      engine: 'llama.cpp',
      threads,
      async decode(prompt, tokens) {
        await sequence.clearHistory();
        const ids: number[] = [];
        let clock = startClock();
        // Token ids are given as they are (node-llama-cpp's tokenize would add no BOS: recipes/README.md).
        for await (const token of sequence.evaluate(prompt as never[], { temperature: 0, yieldEogToken: true })) {
          if (ids.length === 0) clock = startClock();
          ids.push(token as number);
          if (ids.length === tokens) break;
        }
        const run = clock.stop(tokens - 1);
        if (ids.length < tokens) throw new Error(`llama.cpp stopped after ${ids.length} of ${tokens} tokens`);
        return { ...run, ids };
      },
      async dispose() {
        await context.dispose();
      },
    });
  }
  return {
    decoders,
    async close() {
      await model.dispose();
      await llama.dispose();
    },
  };
}

function startClock(): { stop(tokens: number): { tokensPerSecond: number; cpuMicrosPerToken: number } } {
  const wall = performance.now();
  const cpu = process.cpuUsage();
  return {
    stop(tokens) {
      const seconds = (performance.now() - wall) / 1000;
      const used = process.cpuUsage(cpu);
      return { tokensPerSecond: tokens / seconds, cpuMicrosPerToken: (used.user + used.system) / tokens };
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.split(':')[1].trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function gitCommit(): { commit: string; dirty: boolean } {
  try {
    const commit = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { encoding: 'utf8' }).trim() !== '';
    return { commit, dirty };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

function firstDifference(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as { input_ids: number[]; greedy_ids: number[] };
  const prompt = golden.input_ids; // BOS + "Once upon a time", from the HF tokenizer
  const maxContext = 512;
  if (prompt.length + options.tokens > maxContext) throw new Error(`--tokens ${options.tokens}: prompt + tokens must fit the model's ${maxContext} positions`);

  const addonFile = join(process.cwd(), 'native', 'build', 'Release', 'repo_lens.node');
  let addon: NativeAddon;
  try {
    addon = createRequire(join(process.cwd(), 'package.json'))(addonFile) as NativeAddon;
  } catch (err) {
    throw new Error(`${addonFile}: the native addon does not load (${(err as Error).message}); build it with "npm run build:native"`);
  }
  const loadBefore = os.loadavg();
  const ours = options.threads.map((t) => ourDecoder(addon, t));
  const llama = await llamaDecoders(options.threads);
  const decoders = [...ours, ...llama.decoders];

  // One warm-up each, then interleaved repetitions. A setting whose warm-up ran at under a tenth
  // of its engine's best warm-up is not repeated (llama.cpp on two threads can fall to a few
  // tokens/s on a busy 2-core machine); its warm-up figure is reported, marked as such.
  const idsOf = new Map<Decoder, number[]>();
  const warmup = new Map<Decoder, Run>();
  for (const d of decoders) {
    const run = await d.decode(prompt, options.tokens);
    idsOf.set(d, run.ids);
    warmup.set(d, run);
  }
  const speedOf = (d: Decoder) => warmup.get(d)!.tokensPerSecond;
  const bestWarmup = (engine: string) => Math.max(...decoders.filter((d) => d.engine === engine).map(speedOf));
  const repeated = decoders.filter((d) => speedOf(d) >= bestWarmup(d.engine) / 10);
  const runsOf = new Map<Decoder, Run[]>(decoders.map((d) => [d, repeated.includes(d) ? [] : [warmup.get(d)!]]));
  for (let rep = 0; rep < options.reps; rep++) {
    for (const d of repeated) {
      const run = await d.decode(prompt, options.tokens);
      runsOf.get(d)!.push(run);
      if (firstDifference(run.ids, idsOf.get(d)!) >= 0) throw new Error(`${d.engine} (${d.threads} threads) is not deterministic across repetitions`);
    }
  }
  const loadAfter = os.loadavg();
  for (const d of decoders) await d.dispose();
  await llama.close();

  // Same greedy tokens: engines against each other, and against transformers' 64 golden tokens.
  const ourIds = idsOf.get(ours[0])!;
  const llamaIds = idsOf.get(llama.decoders[0])!;
  const goldenNew = golden.greedy_ids.slice(prompt.length);
  const engineDivergence = firstDifference(ourIds, llamaIds);
  const goldenDivergence = firstDifference(ourIds.slice(0, goldenNew.length), goldenNew);

  const rows = decoders.map((d) => {
    const runs = runsOf.get(d)!;
    return {
      engine: d.engine,
      threads: d.threads,
      medianTokensPerSecond: median(runs.map((r) => r.tokensPerSecond)),
      medianCpuMicrosPerToken: median(runs.map((r) => r.cpuMicrosPerToken)),
      runs: runs.map((r) => r.tokensPerSecond),
      repeated: repeated.includes(d),
    };
  });
  const best = (engine: string) => rows.filter((r) => r.engine === engine).reduce((a, b) => (b.medianTokensPerSecond > a.medianTokensPerSecond ? b : a));
  const ourBest = best('repo-lens');
  const llamaBest = best('llama.cpp');
  const ratio = ourBest.medianTokensPerSecond / llamaBest.medianTokensPerSecond;
  const cpuRatio = llamaBest.medianCpuMicrosPerToken / ourBest.medianCpuMicrosPerToken;

  console.log(`stories260K decode, ${options.tokens} tokens after a ${prompt.length}-token prompt, greedy, median of ${options.reps}`);
  console.log('engine      threads  tokens/s (median)  min..max    CPU µs/token (median, all threads)');
  for (const r of rows) {
    const lo = Math.min(...r.runs).toFixed(0);
    const hi = Math.max(...r.runs).toFixed(0);
    const note = r.repeated ? '' : '  (warm-up only: under a tenth of the best setting)';
    const cpu = r.medianCpuMicrosPerToken.toFixed(0).padStart(8);
    console.log(`${r.engine.padEnd(11)} ${String(r.threads).padStart(7)}  ${r.medianTokensPerSecond.toFixed(0).padStart(17)}  ${`${lo}..${hi}`.padEnd(10)}  ${cpu}${note}`);
  }
  console.log(`ratio repo-lens (${ourBest.threads} threads) / llama.cpp (${llamaBest.threads} threads): ${ratio.toFixed(3)} in tokens/s, ${cpuRatio.toFixed(3)} in CPU time per token`);
  console.log(engineDivergence < 0 ? `greedy tokens: identical (${ourIds.length})` : `greedy tokens DIFFER from position ${engineDivergence} (of ${ourIds.length})`);
  console.log(goldenDivergence < 0 ? `first ${goldenNew.length} equal transformers' golden` : `transformers' golden differs at ${goldenDivergence}`);
  console.log(`load average ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after (other processes share this machine)`);

  const date = new Date();
  const result = {
    benchmark: 'cpu-decode',
    model: 'stories260K (ours: hf/model.safetensors fp32; llama.cpp: stories260K-f32.gguf)',
    device: { cpu: cpuModel(), cores: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, node: process.version },
    date: date.toISOString(),
    git: gitCommit(),
    peer: 'llama.cpp through node-llama-cpp 3.22.1 (prebuilt CPU build, gpu: false)',
    method: 'decode tokens/s = (tokens - 1) / time from first to last generated token; prefill not timed; greedy; interleaved repetitions; median. cpuMicrosPerToken: process CPU time (all threads) over the same span',
    promptIds: prompt,
    tokens: options.tokens,
    repetitions: options.reps,
    loadAverage: { before: loadBefore, after: loadAfter },
    rows,
    best: {
      repoLens: { threads: ourBest.threads, tokensPerSecond: ourBest.medianTokensPerSecond, cpuMicrosPerToken: ourBest.medianCpuMicrosPerToken },
      llamaCpp: { threads: llamaBest.threads, tokensPerSecond: llamaBest.medianTokensPerSecond, cpuMicrosPerToken: llamaBest.medianCpuMicrosPerToken },
    },
    ratio,
    cpuTimeRatio: cpuRatio,
    greedyTokens: { identical: engineDivergence < 0, firstDifference: engineDivergence, count: ourIds.length, equalTransformersGoldenFirst: goldenDivergence < 0 ? goldenNew.length : goldenDivergence },
  };
  mkdirSync(join('bench', 'results'), { recursive: true });
  const file = join('bench', 'results', `cpu-decode-${date.toISOString().slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${file}`);
  if (engineDivergence >= 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(`bench:cpu: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
