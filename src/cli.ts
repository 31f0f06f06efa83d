// repo-lens: the command line face of the same pipeline the extension uses.
//   repo-lens generate [--model DIR] --prompt TEXT [...]
//   repo-lens ask [--model DIR] --repo DIR [...] "QUESTION"
// Without --model the bundled default model (models/repo-lens-code in the package) is used.
// The answer streams to stdout, progress goes to stderr; --json prints one JSON object instead.
// Commands live in a table (COMMANDS): a new command is one more entry, a new option one more
// line in its `options` (each command reads its own parsed values).

import { EngineClient, EngineError, type LoadOptions } from './engine/client';
import { PREFILL_PRECISIONS, type Backend, type GenerateResult, type PrefillPrecision } from './engine/protocol';
import { encodeChat } from './model/chat';
import { ask, tokenizerFor, type AskResult } from './qa';
import { EVAL_COMMANDS } from './eval/command';
import { packageRoot, resolveModelDir } from './model/defaultModel';
import { readModelArch } from './model/loader';
import { AttentionSettingsError } from './trace/attention';
import { ATTENTION_CLI_OPTIONS, askTrace, attentionFromOptions } from './trace/askTrace';
import { writeTrace } from './trace/file';

export interface OptionSpec {
  name: string;
  /** Placeholder shown in help; absent for a flag (boolean). */
  value?: string;
  help: string;
  required?: boolean;
}

export interface Parsed {
  options: Map<string, string | true>;
  positional: string[];
}

export interface Command {
  name: string;
  summary: string;
  /** Placeholder for positional arguments in the usage line, e.g. "QUESTION". */
  positional?: string;
  options: OptionSpec[];
  run(args: Parsed): Promise<number>;
}

/** Bad command-line input: printed with the usage hint, exit code 2. */
export class UsageError extends Error {}

const MODEL_OPTIONS: OptionSpec[] = [
  { name: 'model', value: 'DIR', help: 'Hugging Face model folder (config.json, model.safetensors, tokenizer.json); default: the bundled models/repo-lens-code' },
  { name: 'backend', value: 'NAME', help: 'auto (default), cpu or cuda' },
  { name: 'prefill-precision', value: 'P', help: 'CUDA prefill: float32 (default, within ~1e-5 of the CPU) or half (16-bit operands, as a bf16 transformers prefill: about 2x faster prompt processing on an H100; ignored on the CPU)' },
  { name: 'threads', value: 'N', help: 'matrix worker threads (default: one per core)' },
  { name: 'context', value: 'N', help: 'largest prompt in tokens (default: the model\'s context length)' },
];
const SAMPLING_OPTIONS: OptionSpec[] = [
  { name: 'max-tokens', value: 'N', help: 'most tokens to generate (default 256)' },
  { name: 'temperature', value: 'T', help: '0 (default) is greedy' },
  { name: 'top-p', value: 'P', help: 'nucleus sampling mass in (0, 1] (default 1)' },
  { name: 'seed', value: 'S', help: 'random seed for sampling (default 0)' },
  { name: 'json', help: 'print one machine-readable JSON object instead of streaming text' },
];

export const COMMANDS: Command[] = [
  {
    name: 'generate',
    summary: 'continue a prompt with the model',
    options: [
      ...MODEL_OPTIONS,
      { name: 'prompt', value: 'TEXT', help: 'the prompt (BOS is added)', required: true },
      { name: 'chat', help: 'send the prompt as a user message through the model\'s chat template' },
      { name: 'no-eos', help: 'keep generating past the end-of-sequence token' },
      ...SAMPLING_OPTIONS,
    ],
    run: runGenerate,
  },
  {
    name: 'ask',
    summary: 'answer a question about a repository, with its files in the model\'s context',
    positional: 'QUESTION',
    options: [
      ...MODEL_OPTIONS,
      { name: 'repo', value: 'DIR', help: 'the repository folder', required: true },
      ...ATTENTION_CLI_OPTIONS,
      { name: 'kv-assembly', value: 'MODE', help: 'prefix (default): prefill the repository, reusing its longest unchanged prefix; segments: assemble its KV from per-file segments (experimental, approximate, CPU backend; docs/kv-cache.md)' },
      { name: 'segment-recompute', value: 'F', help: 'with --kv-assembly segments: fraction of each moved file\'s tokens run again, in [0, 1] (default 0.25)' },
      ...SAMPLING_OPTIONS,
    ],
    run: runAsk,
  },
  ...EVAL_COMMANDS,
];

// ---------------------------------------------------------------------------------------------
// Arguments

export function parseArgs(command: Command, argv: string[]): Parsed {
  const options = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (name === 'help') {
      options.set('help', true);
      continue;
    }
    const spec = command.options.find((o) => o.name === name);
    if (!spec) throw new UsageError(`unknown option --${name} for "${command.name}"`);
    if (!spec.value) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      options.set(name, true);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value (${spec.value})`);
    options.set(name, value);
  }
  if (options.has('help')) return { options, positional };
  for (const o of command.options) if (o.required && !options.has(o.name)) throw new UsageError(`--${o.name} ${o.value} is required for "${command.name}"`);
  if (!command.positional && positional.length) throw new UsageError(`"${command.name}" takes no positional argument (got ${JSON.stringify(positional[0])})`);
  return { options, positional };
}

function text(p: Parsed, name: string): string | undefined {
  const v = p.options.get(name);
  return typeof v === 'string' ? v : undefined;
}

function number(p: Parsed, name: string, check: { int?: boolean; min?: number; max?: number; minExclusive?: boolean } = {}): number | undefined {
  const raw = text(p, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const bad = raw.trim() === '' || !Number.isFinite(v) || (check.int && !Number.isInteger(v)) ||
    (check.min !== undefined && (check.minExclusive ? v <= check.min : v < check.min)) || (check.max !== undefined && v > check.max);
  if (bad) {
    const range = [check.min !== undefined ? `${check.minExclusive ? '>' : '>='} ${check.min}` : '', check.max !== undefined ? `<= ${check.max}` : ''].filter(Boolean).join(' and ');
    throw new UsageError(`--${name} must be ${check.int ? 'an integer' : 'a number'}${range ? ' ' + range : ''}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

/** --model, or the bundled default model beside this bundle (dist/cli.js: the package root is its parent). */
export function modelDir(p: Parsed): string {
  return resolveModelDir(text(p, 'model'), packageRoot(__dirname), 'Pass --model DIR (a Hugging Face model folder: config.json, model.safetensors, tokenizer.json).');
}

function loadOptions(p: Parsed): LoadOptions {
  const backend = text(p, 'backend') ?? 'auto';
  if (!['auto', 'cpu', 'cuda'].includes(backend)) throw new UsageError(`--backend must be auto, cpu or cuda, got ${JSON.stringify(backend)}`);
  const prefillPrecision = text(p, 'prefill-precision') ?? 'float32';
  if (!(PREFILL_PRECISIONS as readonly string[]).includes(prefillPrecision)) {
    throw new UsageError(`--prefill-precision must be ${PREFILL_PRECISIONS.join(' or ')}, got ${JSON.stringify(prefillPrecision)}`);
  }
  return {
    modelDir: modelDir(p),
    backend: backend as Backend,
    prefillPrecision: prefillPrecision as PrefillPrecision,
    threads: number(p, 'threads', { int: true, min: 0 }) ?? 0,
    contextTokens: number(p, 'context', { int: true, min: 1 }) ?? 0,
  };
}

function samplingOptions(p: Parsed) {
  return {
    maxNewTokens: number(p, 'max-tokens', { int: true, min: 1 }) ?? 256,
    sampling: {
      temperature: number(p, 'temperature', { min: 0 }) ?? 0,
      topP: number(p, 'top-p', { min: 0, minExclusive: true, max: 1 }) ?? 1,
      seed: number(p, 'seed', { int: true }) ?? 0,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Commands

/** Progress on stderr: one rewritten line on a terminal, occasional lines otherwise. */
function progressLine(label: string, done: number, total?: number): void {
  const line = `repo-lens: ${label} ${done}${total !== undefined ? `/${total}` : ''}`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}\x1b[K`);
  else if (total === undefined || done === total) process.stderr.write(line + '\n');
}

function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}

/** A client whose engine is stopped when the command ends; Ctrl-C cancels the work (exit code 130). */
async function withEngine(p: Parsed, work: (client: EngineClient, signal: AbortSignal) => Promise<number>): Promise<number> {
  const client = new EngineClient();
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const json = p.options.has('json');
    await client.load(loadOptions(p), (pr) => { if (!json) progressLine('loading model', pr.done, pr.total); });
    if (!json) endProgress();
    const code = await work(client, abort.signal);
    return abort.signal.aborted ? 130 : code;
  } catch (e) {
    if (!abort.signal.aborted) throw e;
    endProgress();
    process.stderr.write('repo-lens: cancelled\n');
    return 130;
  } finally {
    process.off('SIGINT', onSigint);
    await client.dispose();
  }
}

async function runGenerate(p: Parsed): Promise<number> {
  const json = p.options.has('json');
  const { maxNewTokens, sampling } = samplingOptions(p);
  const prompt = text(p, 'prompt')!;
  return withEngine(p, async (client, signal) => {
    const promptIds = p.options.has('chat')
      ? encodeChat(tokenizerFor(client.modelInfo!.modelDir), [{ role: 'user', content: prompt }])
      : await client.tokenize(prompt, true);
    const result: GenerateResult = await client.generate({
      prompt: { ids: promptIds }, maxNewTokens, sampling, stopAtEos: !p.options.has('no-eos'), signal,
      onToken: (t) => { if (!json) process.stdout.write(t.text); },
    }).result;
    if (json) {
      writeJson({ command: 'generate', model: client.modelInfo, promptIds, ...result, generatedTokens: result.ids.length });
    } else {
      process.stdout.write('\n');
      process.stderr.write(`repo-lens: ${result.ids.length} tokens (${result.finishReason}), prompt ${result.promptTokens} tokens\n`);
    }
    return 0;
  });
}

async function runAsk(p: Parsed): Promise<number> {
  const json = p.options.has('json');
  const question = p.positional.join(' ').trim();
  if (!question) throw new UsageError('ask needs a QUESTION');
  const { maxNewTokens, sampling } = samplingOptions(p);
  const repo = text(p, 'repo')!;
  let attention;
  try {
    attention = attentionFromOptions(p);
  } catch (e) {
    if (e instanceof AttentionSettingsError) throw new UsageError(e.message);
    throw e;
  }
  const traceFile = text(p, 'trace');
  const kvAssembly = text(p, 'kv-assembly') ?? 'prefix';
  if (kvAssembly !== 'prefix' && kvAssembly !== 'segments') throw new UsageError(`--kv-assembly must be prefix or segments, got ${JSON.stringify(kvAssembly)}`);
  const segmentRecompute = number(p, 'segment-recompute', { min: 0, max: 1 });
  return withEngine(p, async (client, signal) => {
    const result: AskResult = await ask(question, repo, {
      client, maxNewTokens, sampling, signal, attention, trace: traceFile !== undefined, kvAssembly, segmentRecompute,
      onProgress: (pr) => { if (!json) progressLine(pr.phase === 'prefill' ? 'reading the prompt' : pr.phase === 'walk' ? 'listing files' : 'reading files', pr.done, pr.total); },
      onContext: (c) => {
        if (json) return;
        endProgress();
        process.stderr.write(`repo-lens: ${c.files.length} files in context, ${c.skipped.length} left out\n`);
      },
      onToken: (t) => {
        if (json) return;
        endProgress();
        process.stdout.write(t);
      },
    });
    if (traceFile) {
      const info = client.modelInfo!;
      const tokenizer = tokenizerFor(info.modelDir);
      writeTrace(traceFile, askTrace({
        result, modelName: info.modelDir, arch: readModelArch(info.modelDir), kvBlockSize: info.kvBlockSize,
        tokenText: (id) => tokenizer.decode([id]),
      }));
    }
    if (json) {
      writeJson({
        command: 'ask', model: client.modelInfo, question, answer: result.answer, finishReason: result.finishReason, ids: result.ids,
        tokens: result.tokens,
        ...(result.segments ? { segments: result.segments } : {}),
        files: result.context.files.map((f) => ({ path: f.path, tokens: f.tokens, startToken: f.startToken, lines: f.lines })),
        skipped: result.context.skipped,
        manifest: result.context.manifest,
      });
    } else {
      process.stdout.write('\n');
      process.stderr.write(`repo-lens: ${result.tokens.generated} tokens (${result.finishReason}); prompt ${result.tokens.prompt} tokens, ${result.tokens.repository} of them the repository\n`);
    }
    return 0;
  });
}

function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

// ---------------------------------------------------------------------------------------------
// Entry

export function usage(command?: Command): string {
  if (!command) {
    const width = Math.max(...COMMANDS.map((c) => c.name.length));
    return ['Usage: repo-lens <command> [options]', '', 'Commands:',
      ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`), '',
      'Run "repo-lens <command> --help" for its options.'].join('\n');
  }
  const opts = command.options.map((o) => [`--${o.name}${o.value ? ' ' + o.value : ''}`, o.help + (o.required ? ' (required)' : '')]);
  const width = Math.max(...opts.map(([a]) => a.length));
  return [`Usage: repo-lens ${command.name} [options]${command.positional ? ` "${command.positional}"` : ''}`, '', command.summary, '', 'Options:',
    ...opts.map(([a, b]) => `  ${a.padEnd(width)}  ${b}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`repo-lens: unknown command "${name}" (commands: ${COMMANDS.map((c) => c.name).join(', ')})\n`);
    return 2;
  }
  try {
    const parsed = parseArgs(command, rest);
    if (parsed.options.has('help')) {
      process.stdout.write(usage(command) + '\n');
      return 0;
    }
    return await command.run(parsed);
  } catch (e) {
    endProgress();
    if (e instanceof UsageError) {
      process.stderr.write(`repo-lens ${command.name}: ${e.message} (see "repo-lens ${command.name} --help")\n`);
      return 2;
    }
    // Engine, model and pipeline errors already say what is wrong and where; print them as they are.
    const message = e instanceof Error ? e.message : String(e);
    const code = e instanceof EngineError ? ` [${e.code}]` : '';
    process.stderr.write(`repo-lens ${command.name}: ${message}${code}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
