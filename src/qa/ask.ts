// The question-answer pipeline, shared by the CLI and the extension (no VS Code here):
// repository → context (src/context) → prompt ids (prompt.ts) → engine (EngineClient) → streamed answer.

import { relative, resolve, sep } from 'node:path';
import { buildContext, type BlockManifest, type ContextFile, type ContextProgress, type SkippedFile } from '../context';
import type { EngineClient } from '../engine/client';
import type { AttentionReport, GenerateResult, PrefixCacheResult, SamplingParams } from '../engine/protocol';
import type { AttentionSettings } from '../trace/attention';
import { TextTokenizer } from '../model/tokenizer';
import { contextTokenizer, questionPrompt } from './prompt';

export interface AskProgress {
  /** walk/read: the context builder; prefill: the engine reading the prompt. */
  phase: 'walk' | 'read' | 'prefill';
  done: number;
  total?: number;
  path?: string;
}

export interface AskOptions {
  /** An engine with a model loaded (its model folder also gives the tokenizer). */
  client: AnswerEngine;
  /** Most answer tokens (default 256); the repository gets what the context has left. */
  maxNewTokens?: number;
  sampling?: Partial<SamplingParams>;
  /** Globs relative to the repository left out (e.g. VS Code's files.exclude). */
  exclude?: readonly string[];
  /** Recently edited files (relative, most recent first): they get budget first and sit last. */
  recentFiles?: readonly string[];
  maxFileBytes?: number;
  /** Keep the repository's KV on disk in this folder (e.g. the workspace storage), so a restarted engine need not prefill it again. */
  cache?: { dir: string; maxBytes?: number };
  /** Sparse decode attention (docs/prhs.md) and whether to get each step's selection back. */
  attention?: AttentionSettings;
  trace?: boolean;
  /**
   * How the repository's KV is built: 'prefix' (default) prefills it, reusing the longest unchanged
   * prefix; 'segments' assembles it from per-file KV segments (docs/kv-cache.md; approximate, native CPU only).
   */
  kvAssembly?: 'prefix' | 'segments';
  /** With 'segments': fraction of each moved file's tokens run again, from its start (default SEGMENT_RECOMPUTE). */
  segmentRecompute?: number;
  signal?: AbortSignal;
  onToken?: (text: string) => void;
  onProgress?: (progress: AskProgress) => void;
  /** Called once the context is built, before generation (the UI can show files and skipped ones). */
  onContext?: (context: AskContext) => void;
}

export interface AskContext {
  files: ContextFile[];
  skipped: SkippedFile[];
  /** Which file and lines every KV block holds; its offset is `tokens.head`. */
  manifest: BlockManifest;
}

export interface AskResult {
  answer: string;
  finishReason: GenerateResult['finishReason'];
  /** Generated token ids. */
  ids: number[];
  tokens: {
    /** Prompt tokens before the repository text (chat template head, BOS). */
    head: number;
    repository: number;
    /** Question plus the template's tail. */
    question: number;
    prompt: number;
    /** Prompt tokens the engine actually ran (fewer when it reused the repository's KV). */
    prefilled: number;
    generated: number;
  };
  context: AskContext;
  /** What the disk cache did (when `cache` was given). */
  cache?: PrefixCacheResult;
  /** What sparse attention did (when `attention` was given and not dense). */
  attention?: AttentionReport;
  /** What the segment assembly did (kvAssembly 'segments', when the repository's KV was assembled). */
  segments?: GenerateResult['segments'];
}

/** What the pipeline uses of an engine: the native EngineClient and WebGpuEngineClient both fit. */
export type AnswerEngine = Pick<EngineClient, 'modelInfo' | 'generate'>;

export class AskError extends Error {}

const DEFAULT_MAX_NEW_TOKENS = 256;
/** Fraction of each moved file's tokens recomputed with kvAssembly 'segments' (bench/results/samkv-*.md). */
export const SEGMENT_RECOMPUTE = 0.25;
const tokenizers = new Map<string, TextTokenizer>();

/** The tokenizer of a model folder, loaded once per process. */
export function tokenizerFor(modelDir: string): TextTokenizer {
  const key = resolve(modelDir);
  let t = tokenizers.get(key);
  if (!t) {
    t = TextTokenizer.load(key);
    tokenizers.set(key, t);
  }
  return t;
}

export async function ask(question: string, repoDir: string, options: AskOptions): Promise<AskResult> {
  if (!question.trim()) throw new AskError('the question is empty');
  const info = options.client.modelInfo;
  if (!info) throw new AskError('no model is loaded: load one with EngineClient.load first');
  const tokenizer = tokenizerFor(info.modelDir);
  const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const { headIds, suffixIds } = questionPrompt(tokenizer, question);
  const budgetTokens = info.contextTokens - headIds.length - suffixIds.length - maxNewTokens;
  if (budgetTokens <= 0) {
    throw new AskError(`no room for the repository: the context holds ${info.contextTokens} tokens, the question takes ${headIds.length + suffixIds.length} and the answer up to ${maxNewTokens}`);
  }

  const ctx = await buildContext({
    root: repoDir,
    tokenizer: contextTokenizer(tokenizer),
    budgetTokens,
    blockSize: info.kvBlockSize,
    offset: headIds.length,
    exclude: options.exclude,
    recentFiles: options.recentFiles,
    maxFileBytes: options.maxFileBytes,
    signal: options.signal,
    onProgress: (p: ContextProgress) => options.onProgress?.({ phase: p.phase, done: p.done, total: p.total, path: p.path }),
  });
  const context: AskContext = { files: ctx.files, skipped: ctx.skipped, manifest: ctx.manifest };
  options.onContext?.(context);

  const ids = [...headIds, ...ctx.ids, ...suffixIds];
  const result = await options.client.generate({
    prompt: { ids },
    maxNewTokens,
    sampling: options.sampling,
    // The entry is the repository's: head + repository ids, never the question.
    cache: options.cache && { ...options.cache, key: resolve(repoDir), prefixTokens: headIds.length + ctx.ids.length },
    ...(options.attention ? { attention: options.attention, trace: options.trace } : {}),
    ...(options.kvAssembly === 'segments' && ctx.files.length > 0
      ? { kvAssembly: { mode: 'segments' as const, starts: ctx.files.map((f) => headIds.length + f.startToken), end: headIds.length + ctx.ids.length, recompute: options.segmentRecompute ?? SEGMENT_RECOMPUTE } }
      : {}),
    signal: options.signal,
    onToken: (t) => options.onToken?.(t.text),
    onProgress: (p) => { if (p.phase === 'prefill') options.onProgress?.({ phase: 'prefill', done: p.done, total: p.total }); },
  }).result;

  return {
    answer: result.text,
    finishReason: result.finishReason,
    ids: result.ids,
    tokens: {
      head: headIds.length,
      repository: ctx.ids.length,
      question: suffixIds.length,
      prompt: result.promptTokens,
      prefilled: result.prefilledTokens,
      generated: result.ids.length,
    },
    context,
    ...(result.cache ? { cache: result.cache } : {}),
    ...(result.attention ? { attention: result.attention } : {}),
    ...(result.segments ? { segments: result.segments } : {}),
  };
}

/** Explains `selectionText` from `filePath` with the whole repository as context (the editor command). */
export function explain(selectionText: string, filePath: string, repoDir: string, options: AskOptions): Promise<AskResult> {
  const rel = relative(resolve(repoDir), resolve(filePath)).split(sep).join('/');
  const inRepo = rel && !rel.startsWith('..');
  const where = inRepo ? ` from ${rel}` : '';
  const question = `Explain the following code${where}: what it does, how it fits into the repository, and anything surprising.\n\`\`\`\n${selectionText}\n\`\`\``;
  // The file being read is the most relevant one: it gets budget first.
  const recentFiles = inRepo ? [rel, ...(options.recentFiles ?? []).filter((f) => f !== rel)] : options.recentFiles;
  return ask(question, repoDir, { ...options, recentFiles });
}
