// `repo-lens eval` (run a task set per attention mode and budget) and `repo-lens eval-tasks`
// (generate long-context tasks). The model runs in this process on the CPU backend, where the
// sparse attention policies live; the report goes to stdout as a Markdown table or JSON, and with
// --out to two files (the full JSON, and the table under a header saying what was run where).
// Progress, one line per task with its time, goes to stderr.
// Reached through cli.ts only (this module uses its UsageError and modelDir: an import cycle that
// is safe because they are read at run time, never while the modules load).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { UsageError, modelDir as modelDirOf, type Command, type Parsed } from '../cli';
import { addonPath } from '../engine/process';
import { packageRoot, resolveModelDir } from '../model/defaultModel';
import { readModelSpec } from '../model/loader';
import type { NativeAddon } from '../model/native';
import { TextTokenizer } from '../model/tokenizer';
import { ATTENTION_MODES, AttentionSettingsError, parseAttentionSettings, type AttentionMode } from '../trace/attention';
import { generateTasks } from './generators';
import { reportTable, runEval, type EvalReport, type EvalVariant } from './run';
import { TASK_KINDS, readTasks, writeTasks, type TaskKind } from './tasks';

function value(p: Parsed, name: string): string | undefined {
  const v = p.options.get(name);
  return typeof v === 'string' ? v : undefined;
}

function list(p: Parsed, name: string, fallback: string): string[] {
  return (value(p, name) ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

function positiveInt(p: Parsed, name: string, fallback: number): number {
  const raw = value(p, name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return v;
}

function loadAddon(): NativeAddon {
  const module = { exports: {} as NativeAddon };
  try {
    process.dlopen(module, addonPath());
  } catch (e) {
    throw new Error(`${addonPath()}: the native addon does not load (${(e as Error).message}); build it with "npm run build:native"`);
  }
  return module.exports;
}

async function runEvalCommand(p: Parsed): Promise<number> {
  const modelDir = modelDirOf(p);
  const tasksFile = value(p, 'tasks')!;
  const tasks = readTasks(tasksFile);
  const modes = list(p, 'modes', 'prhs,quest,oracle,streaming');
  for (const m of modes) if (!(ATTENTION_MODES as readonly string[]).includes(m)) throw new UsageError(`--modes: unknown mode ${JSON.stringify(m)} (known: ${ATTENTION_MODES.join(', ')})`);
  const budgets = list(p, 'budgets', '0.25').map((b) => {
    const v = Number(b);
    if (!(v > 0 && v <= 1)) throw new UsageError(`--budgets: ${JSON.stringify(b)} is not a fraction in (0, 1]`);
    return v;
  });
  let extra: unknown = {};
  try {
    extra = JSON.parse(value(p, 'attention') ?? '{}');
  } catch (e) {
    throw new UsageError(`--attention must be a JSON object of attention settings (${(e as Error).message})`);
  }
  const variants: EvalVariant[] = [];
  for (const mode of modes as AttentionMode[]) {
    for (const budget of budgets) {
      try {
        variants.push({ mode, budget, settings: parseAttentionSettings({ ...(extra as object), mode, budget }) });
      } catch (e) {
        if (e instanceof AttentionSettingsError) throw new UsageError(`--attention: ${e.message}`);
        throw e;
      }
    }
  }
  const blockSize = positiveInt(p, 'block-size', 32);
  const threads = positiveInt(p, 'threads', 1);
  const maxNewTokens = positiveInt(p, 'max-tokens', 16);
  const spec = readModelSpec(modelDir, { kvBlockSize: blockSize, threads, contextTokens: Number(value(p, 'context') ?? 0) });
  const model = loadAddon().loadModel({ ...spec, backend: 'cpu' } as typeof spec);
  try {
    const tokenizer = TextTokenizer.load(modelDir);
    const start = performance.now();
    const report = runEval(model, tokenizer, tasks, {
      variants, maxNewTokens, contextTokens: spec.contextTokens,
      onTask: (done, total, t) => process.stderr.write(`repo-lens eval: ${done}/${total} ${t.taskId}: ` +
        (t.skipped ? 'skipped' : `${t.promptTokens} prompt tokens, prefill ${t.prefillSeconds.toFixed(1)} s, decode ${t.decodeSeconds.toFixed(1)} s`) +
        `; ${elapsed((performance.now() - start) / 1000)} elapsed\n`),
    });
    for (const s of report.skipped) process.stderr.write(`repo-lens eval: skipped ${s.taskId}: ${s.reason}\n`);
    const run: RunInfo = {
      model: modelDir, tasksFile, kvBlockSize: blockSize, contextTokens: spec.contextTokens, maxNewTokens, threads,
      date: new Date().toISOString(), commit: gitCommit(), machine: machine(), seconds: (performance.now() - start) / 1000,
    };
    const full = { ...run, variants, ...report };
    const out = value(p, 'out');
    if (out) {
      const stem = out.replace(/\.(json|md)$/, '');
      writeFileSync(`${stem}.json`, JSON.stringify(full, null, 1) + '\n');
      writeFileSync(`${stem}.md`, reportMarkdown(run, variants, report));
      process.stderr.write(`repo-lens eval: wrote ${stem}.json and ${stem}.md\n`);
    }
    process.stdout.write(p.options.has('json') ? JSON.stringify(full) + '\n' : reportTable(report.rows) + '\n');
    return report.rows.length > 0 ? 0 : 1;
  } finally {
    model.dispose();
  }
}

/** What was run, where and when: the header of the report files. */
interface RunInfo {
  model: string;
  tasksFile: string;
  kvBlockSize: number;
  contextTokens: number;
  maxNewTokens: number;
  threads: number;
  date: string;
  /** The package checkout's HEAD, null outside a git checkout. */
  commit: string | null;
  machine: string;
  seconds: number;
}

function reportMarkdown(run: RunInfo, variants: readonly EvalVariant[], report: EvalReport): string {
  const prefill = report.timings.reduce((s, t) => s + t.prefillSeconds, 0);
  const decode = report.timings.reduce((s, t) => s + t.decodeSeconds, 0);
  return [
    '# repo-lens eval', '',
    `- model: ${run.model}`,
    `- tasks: ${run.tasksFile} (${report.timings.length} tasks, ${report.skipped.length} skipped)`,
    `- modes: ${variants.map((v) => `${v.mode}@${v.budget}`).join(', ')}; KV block ${run.kvBlockSize} tokens, context ${run.contextTokens}, at most ${run.maxNewTokens} new tokens`,
    `- date: ${run.date}; commit: ${run.commit ?? 'unknown'}`,
    `- machine: ${run.machine}, ${run.threads} thread(s); wall time ${elapsed(run.seconds)} (prefill ${elapsed(prefill)}, decode ${elapsed(decode)})`,
    '', reportTable(report.rows), '',
  ].join('\n');
}

function elapsed(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

function gitCommit(): string | null {
  try {
    const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: packageRoot(__dirname), encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  } catch {
    return null;
  }
}

function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? 'unknown CPU'} (${c.length} cores)`;
}

async function runEvalTasks(p: Parsed): Promise<number> {
  const kinds = list(p, 'kinds', TASK_KINDS.join(','));
  for (const k of kinds) if (!(TASK_KINDS as readonly string[]).includes(k)) throw new UsageError(`--kinds: unknown kind ${JSON.stringify(k)} (known: ${TASK_KINDS.join(', ')})`);
  const lengths = list(p, 'lengths', '2048').map((l) => {
    const v = Number(l);
    if (!Number.isInteger(v) || v < 16) throw new UsageError(`--lengths: ${JSON.stringify(l)} is not a token count >= 16`);
    return v;
  });
  const tokenizer = TextTokenizer.load(resolveModelDir(value(p, 'tokenizer'), packageRoot(__dirname), 'Pass --tokenizer DIR (a model folder with tokenizer.json).'));
  const tasks = generateTasks({
    kinds: kinds as TaskKind[], lengths, count: positiveInt(p, 'count', 5), seed: positiveInt(p, 'seed', 1),
    countTokens: (t) => tokenizer.encode(t, { addSpecialTokens: false }).length,
  });
  writeTasks(value(p, 'out')!, tasks);
  process.stderr.write(`repo-lens eval-tasks: wrote ${tasks.length} tasks to ${value(p, 'out')}\n`);
  return 0;
}

export const EVAL_COMMANDS: Command[] = [
  {
    name: 'eval',
    summary: 'run a JSONL task set with dense attention and each sparse mode/budget; report accuracy, agreement, δ, budget, scoring passes',
    options: [
      { name: 'model', value: 'DIR', help: 'Hugging Face model folder (default: the bundled models/repo-lens-code)' },
      { name: 'tasks', value: 'FILE', help: 'JSONL task file (see "repo-lens eval-tasks")', required: true },
      { name: 'modes', value: 'LIST', help: `comma-separated attention modes (default prhs,quest,oracle,streaming; known: ${ATTENTION_MODES.join(', ')})` },
      { name: 'budgets', value: 'LIST', help: 'comma-separated budgets as fractions of the context (default 0.25)' },
      { name: 'attention', value: 'JSON', help: 'further attention settings for every mode, e.g. {"tau":0.5,"keyBound":"int8"} (docs/prhs.md)' },
      { name: 'block-size', value: 'N', help: 'tokens per KV block (default 32)' },
      { name: 'context', value: 'N', help: 'largest sequence in tokens (default: the model\'s context length)' },
      { name: 'threads', value: 'N', help: 'matrix worker threads (default 1)' },
      { name: 'max-tokens', value: 'N', help: 'most tokens generated per answer (default 16)' },
      { name: 'out', value: 'FILE', help: 'also write the report to FILE.json (every task\'s outcome and time) and FILE.md (the table, with what was run where); a .json or .md ending is dropped from FILE' },
      { name: 'json', help: 'print the report as JSON instead of a Markdown table' },
    ],
    run: runEvalCommand,
  },
  {
    name: 'eval-tasks',
    summary: 'generate long-context tasks (passkey, key-value retrieval, variable tracking, where-defined) as JSONL',
    options: [
      { name: 'tokenizer', value: 'DIR', help: 'model folder whose tokenizer.json measures the lengths (default: the bundled models/repo-lens-code)' },
      { name: 'out', value: 'FILE', help: 'the JSONL file to write', required: true },
      { name: 'kinds', value: 'LIST', help: `comma-separated task kinds (default all: ${TASK_KINDS.join(', ')})` },
      { name: 'lengths', value: 'LIST', help: 'comma-separated context lengths in tokens (default 2048)' },
      { name: 'count', value: 'N', help: 'tasks per kind and length (default 5)' },
      { name: 'seed', value: 'N', help: 'random seed (default 1)' },
    ],
    run: runEvalTasks,
  },
];
