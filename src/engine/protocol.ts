// The one protocol every engine speaks (the native engine process and the WebGPU webview engine).
// Requests carry an id; every reply names the id it answers. Messages cross a process or webview
// boundary, so both sides validate what they receive (parseRequest / parseReply).

import type { PrefillPrecision } from '../model/native';
import { AttentionSettingsError, parseAttentionSettings, type AttentionSettings } from '../trace/attention';

export type Backend = 'auto' | 'cuda' | 'cpu' | 'webgpu';
/** The CUDA backend's prefill precision (NativeModelSpec.prefillPrecision); other backends ignore it. */
export type { PrefillPrecision };
export const PREFILL_PRECISIONS: readonly PrefillPrecision[] = ['float32', 'half'];

export interface SamplingParams {
  /** 0: greedy. */
  temperature: number;
  /** Nucleus sampling mass, (0, 1]. */
  topP: number;
  seed: number;
}

export interface LoadRequest {
  type: 'load';
  id: number;
  modelDir: string;
  backend: Backend;
  kvBlockSize: number;
  /** 0: the model's own context length. */
  contextTokens: number;
  threads: number;
  /** CUDA prefill precision; absent: 'float32'. */
  prefillPrecision?: PrefillPrecision;
}

/** A prompt as text (tokenized by the engine, BOS added) or as token ids (used as given). */
export type Prompt = { text: string } | { ids: number[] };

export interface GenerateRequest {
  type: 'generate';
  id: number;
  prompt: Prompt;
  maxNewTokens: number;
  sampling: SamplingParams;
  /** Stop at the model's end-of-sequence token (default true). */
  stopAtEos: boolean;
  /** Keep the prompt's reusable prefix on disk (native engine only; others ignore it). */
  cache?: PrefixCacheRequest;
  /** Decode attention (PrHS or a baseline; docs/prhs.md). Settings left out take their defaults
   *  (ATTENTION_DEFAULTS); absent or mode "dense": the engine's dense attention. The native CPU engine
   *  and the WebGPU engine run every mode; the native CUDA backend refuses sparse modes. */
  attention?: AttentionSettings;
  /** With `attention`: return each decode step's selection (for the selection trace, docs/trace.md). */
  trace?: boolean;
  /** Build the repository's KV from per-file segments (docs/kv-cache.md; native CPU engine only). Absent: prefix reuse. */
  kvAssembly?: KvAssemblyRequest;
}

/**
 * Per-file KV segments: each segment of the prompt is prefilled on its own after the head, kept, and
 * assembled in any order with its keys re-rotated; `recompute` of each moved segment's tokens are run
 * again over what precedes them. Approximate: the positions after the head are not a prefill's.
 */
export interface KvAssemblyRequest {
  mode: 'segments';
  /** Prompt positions where each segment (file) starts, ascending; starts[0] ends the head. */
  starts: number[];
  /** Where the last segment ends (e.g. head + repository tokens). */
  end: number;
  /** Tokens recomputed: this fraction of each moved segment's, in [0, 1]. */
  recompute: number;
  /** Which: 'query' (default) the blocks the question attends to most; 'starts' each moved segment's first tokens. */
  policy?: 'query' | 'starts';
}

/** One KV head's selection at a decode step, as the selection trace needs it. */
export interface StepHeadSelection {
  /** Logical block ids read, ascending. */
  blocks: number[];
  source: 'scored' | 'reused' | 'shared' | 'fixed' | 'dense';
  deltaHat: number | null;
  delta: number | null;
  expanded: number;
}

/** What sparse decode attention did during a generation. */
export interface AttentionReport {
  settings: AttentionSettings;
  /** Totals over the decode steps (see NativeAttentionCounters). */
  counters: { steps: number; scoringPasses: number; certifyPasses: number; certified: number; expanded: number; entriesRead: number; entriesContext: number };
  /** With `trace`: one entry per generated token, [layer][kvHead]; step i's query is the token at
   *  position promptTokens - 1 + i (the prompt's last token is the first decode step). */
  steps?: StepHeadSelection[][][];
}

/**
 * The disk cache of a prompt prefix (src/cache/). Before the prefill, the engine restores from
 * the entry the longest common prefix of the prompt, when that is longer than what it holds in
 * memory; after the generation it saves the prompt's first `prefixTokens` positions there unless
 * the entry already holds them. Problems never fail the request: they come back as notes.
 */
export interface PrefixCacheRequest {
  /** The cache folder (per workspace, e.g. the extension's workspace storage). */
  dir: string;
  /** Names the entry in the folder (e.g. the repository root): one entry per key, model and settings. */
  key: string;
  /** The prompt's reusable prefix (e.g. chat head + repository text), at most the prompt's length. */
  prefixTokens: number;
  /** Cap on the folder's entries in bytes; least recently used entries are removed (default 4 GiB). */
  maxBytes?: number;
}

export interface PrefixCacheResult {
  /** Prompt positions restored from disk (0: none). */
  restoredTokens: number;
  /** Positions saved to disk after this generation (0: the entry already held them, or not saved). */
  savedTokens: number;
  /** What the user should know: entries discarded and why, saves skipped, evictions. */
  notes: string[];
}

export interface TokenizeRequest {
  type: 'tokenize';
  id: number;
  text: string;
  addSpecialTokens: boolean;
}

export interface CancelRequest {
  type: 'cancel';
  id: number;
  /** The request to cancel. */
  target: number;
}

export interface ShutdownRequest {
  type: 'shutdown';
  id: number;
}

export type Request = LoadRequest | GenerateRequest | TokenizeRequest | CancelRequest | ShutdownRequest;

export interface ModelInfo {
  modelDir: string;
  backend: string;
  contextTokens: number;
  vocabSize: number;
  numLayers: number;
  numKvHeads: number;
  kvBlockSize: number;
  weightBytes: number;
  /** Why the backend in use was chosen (e.g. "no CUDA driver: CPU"). */
  backendReason: string;
}

export interface GenerateResult {
  promptTokens: number;
  /** Tokens actually run through the model for the prompt (less than promptTokens when a cached prefix was reused). */
  prefilledTokens: number;
  ids: number[];
  text: string;
  finishReason: 'eos' | 'length' | 'cancelled';
  /** Present when the request asked for the disk cache. */
  cache?: PrefixCacheResult;
  /** Present when the request set a sparse `attention`. */
  attention?: AttentionReport;
  /** Present when kvAssembly built the repository's KV: segments taken from memory, prefilled, and tokens recomputed. */
  segments?: { reused: number; prefilled: number; recomputed: number };
}

export type Reply =
  | { type: 'ready'; id: number; info: ModelInfo }
  | { type: 'progress'; id: number; phase: 'load' | 'prefill'; done: number; total: number }
  | { type: 'token'; id: number; tokenId: number; text: string }
  | { type: 'generated'; id: number; result: GenerateResult }
  | { type: 'tokens'; id: number; ids: number[] }
  | { type: 'error'; id: number; code: ErrorCode; message: string };

export type ErrorCode =
  | 'bad-request'
  | 'model-invalid'
  | 'model-missing'
  | 'not-loaded'
  | 'prompt-too-long'
  | 'backend-unavailable'
  | 'cancelled'
  | 'engine-crashed'
  /** The engine sent nothing for a request within the client's time limit (the client then restarts it). */
  | 'timeout'
  | 'internal';

export class ProtocolError extends Error {}

type Json = Record<string, unknown>;

function obj(x: unknown, what: string): Json {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new ProtocolError(`${what} must be an object`);
  return x as Json;
}
function num(o: Json, k: string, opts: { int?: boolean; min?: number; max?: number } = {}): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ProtocolError(`${k} must be a finite number`);
  if (opts.int && !Number.isInteger(v)) throw new ProtocolError(`${k} must be an integer`);
  if (opts.min !== undefined && v < opts.min) throw new ProtocolError(`${k} must be >= ${opts.min}`);
  if (opts.max !== undefined && v > opts.max) throw new ProtocolError(`${k} must be <= ${opts.max}`);
  return v;
}
function str(o: Json, k: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw new ProtocolError(`${k} must be a string`);
  return v;
}
function bool(o: Json, k: string): boolean {
  const v = o[k];
  if (typeof v !== 'boolean') throw new ProtocolError(`${k} must be a boolean`);
  return v;
}
function intArray(o: Json, k: string): number[] {
  const v = o[k];
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0)) throw new ProtocolError(`${k} must be an array of non-negative integers`);
  return v as number[];
}
function oneOf<T extends string>(o: Json, k: string, allowed: readonly T[]): T {
  const v = str(o, k);
  if (!(allowed as readonly string[]).includes(v)) throw new ProtocolError(`${k} must be one of ${allowed.join(', ')}`);
  return v as T;
}

function attentionSettings(x: unknown): AttentionSettings {
  try {
    return parseAttentionSettings(x);
  } catch (e) {
    if (e instanceof AttentionSettingsError) throw new ProtocolError(e.message);
    throw e;
  }
}

const SOURCES = ['scored', 'reused', 'shared', 'fixed', 'dense'] as const;
function unitOrNull(o: Json, k: string): number | null {
  return o[k] === null ? null : num(o, k, { min: 0, max: 1 });
}
function attentionReport(a: Json): AttentionReport {
  const c = obj(a.counters, 'attention.counters');
  const count = (k: string) => num(c, k, { int: true, min: 0 });
  const report: AttentionReport = {
    settings: attentionSettings(a.settings),
    counters: {
      steps: count('steps'), scoringPasses: count('scoringPasses'), certifyPasses: count('certifyPasses'), certified: count('certified'),
      expanded: count('expanded'), entriesRead: count('entriesRead'), entriesContext: count('entriesContext'),
    },
  };
  if (a.steps === undefined) return report;
  if (!Array.isArray(a.steps)) throw new ProtocolError('attention.steps must be an array');
  report.steps = a.steps.map((layers: unknown) => {
    if (!Array.isArray(layers)) throw new ProtocolError('attention.steps[i] must be an array of layers');
    return layers.map((heads: unknown) => {
      if (!Array.isArray(heads)) throw new ProtocolError('attention.steps[i][layer] must be an array of KV heads');
      return heads.map((h: unknown) => {
        const o = obj(h, 'attention.steps[i][layer][head]');
        return { blocks: intArray(o, 'blocks'), source: oneOf(o, 'source', SOURCES), deltaHat: unitOrNull(o, 'deltaHat'), delta: unitOrNull(o, 'delta'), expanded: num(o, 'expanded', { int: true, min: 0 }) };
      });
    });
  });
  return report;
}

function prefixCache(c: Json): PrefixCacheRequest {
  return {
    dir: str(c, 'dir'), key: str(c, 'key'),
    prefixTokens: num(c, 'prefixTokens', { int: true, min: 0 }),
    ...(c.maxBytes === undefined ? {} : { maxBytes: num(c, 'maxBytes', { int: true, min: 0 }) }),
  };
}

function kvAssembly(a: Json): KvAssemblyRequest {
  return {
    mode: oneOf(a, 'mode', ['segments'] as const), starts: intArray(a, 'starts'), end: num(a, 'end', { int: true, min: 0 }), recompute: num(a, 'recompute', { min: 0, max: 1 }),
    ...(a.policy === undefined ? {} : { policy: oneOf(a, 'policy', ['query', 'starts'] as const) }),
  };
}

function segmentsResult(r: Json): NonNullable<GenerateResult['segments']> {
  const count = (k: string) => num(r, k, { int: true, min: 0 });
  return { reused: count('reused'), prefilled: count('prefilled'), recomputed: count('recomputed') };
}

const BACKENDS = ['auto', 'cuda', 'cpu', 'webgpu'] as const;

/** Validates a request received by an engine. Throws ProtocolError with a message naming the field. */
export function parseRequest(x: unknown): Request {
  const o = obj(x, 'request');
  const id = num(o, 'id', { int: true, min: 0 });
  switch (o.type) {
    case 'load':
      return {
        type: 'load', id,
        modelDir: str(o, 'modelDir'),
        backend: oneOf(o, 'backend', BACKENDS),
        kvBlockSize: num(o, 'kvBlockSize', { int: true, min: 1, max: 4096 }),
        contextTokens: num(o, 'contextTokens', { int: true, min: 0 }),
        threads: num(o, 'threads', { int: true, min: 0, max: 1024 }),
        ...(o.prefillPrecision === undefined ? {} : { prefillPrecision: oneOf(o, 'prefillPrecision', PREFILL_PRECISIONS) }),
      };
    case 'generate': {
      const p = obj(o.prompt, 'prompt');
      const prompt: Prompt = 'ids' in p ? { ids: intArray(p, 'ids') } : { text: str(p, 'text') };
      const s = obj(o.sampling, 'sampling');
      return {
        type: 'generate', id, prompt,
        maxNewTokens: num(o, 'maxNewTokens', { int: true, min: 0 }),
        sampling: {
          temperature: num(s, 'temperature', { min: 0 }),
          topP: num(s, 'topP', { min: 0, max: 1 }),
          seed: num(s, 'seed', { int: true }),
        },
        stopAtEos: bool(o, 'stopAtEos'),
        ...(o.cache === undefined ? {} : { cache: prefixCache(obj(o.cache, 'cache')) }),
        ...(o.attention === undefined ? {} : { attention: attentionSettings(o.attention) }),
        ...(o.trace === undefined ? {} : { trace: bool(o, 'trace') }),
        ...(o.kvAssembly === undefined ? {} : { kvAssembly: kvAssembly(obj(o.kvAssembly, 'kvAssembly')) }),
      };
    }
    case 'tokenize':
      return { type: 'tokenize', id, text: str(o, 'text'), addSpecialTokens: bool(o, 'addSpecialTokens') };
    case 'cancel':
      return { type: 'cancel', id, target: num(o, 'target', { int: true, min: 0 }) };
    case 'shutdown':
      return { type: 'shutdown', id };
    default:
      throw new ProtocolError(`unknown request type ${JSON.stringify(o.type)}`);
  }
}

function prefixCacheResult(c: Json): PrefixCacheResult {
  const notes = c.notes;
  if (!Array.isArray(notes) || !notes.every((n) => typeof n === 'string')) throw new ProtocolError('notes must be an array of strings');
  return {
    restoredTokens: num(c, 'restoredTokens', { int: true, min: 0 }),
    savedTokens: num(c, 'savedTokens', { int: true, min: 0 }),
    notes: notes as string[],
  };
}

const ERROR_CODES: readonly ErrorCode[] = [
  'bad-request', 'model-invalid', 'model-missing', 'not-loaded', 'prompt-too-long',
  'backend-unavailable', 'cancelled', 'engine-crashed', 'timeout', 'internal',
];

/** Validates a reply received from an engine. */
export function parseReply(x: unknown): Reply {
  const o = obj(x, 'reply');
  const id = num(o, 'id', { int: true, min: 0 });
  switch (o.type) {
    case 'ready': {
      const i = obj(o.info, 'info');
      return {
        type: 'ready', id,
        info: {
          modelDir: str(i, 'modelDir'), backend: str(i, 'backend'),
          contextTokens: num(i, 'contextTokens', { int: true }), vocabSize: num(i, 'vocabSize', { int: true }),
          numLayers: num(i, 'numLayers', { int: true }), numKvHeads: num(i, 'numKvHeads', { int: true }),
          kvBlockSize: num(i, 'kvBlockSize', { int: true }), weightBytes: num(i, 'weightBytes'),
          backendReason: str(i, 'backendReason'),
        },
      };
    }
    case 'progress':
      return { type: 'progress', id, phase: oneOf(o, 'phase', ['load', 'prefill'] as const), done: num(o, 'done'), total: num(o, 'total') };
    case 'token':
      return { type: 'token', id, tokenId: num(o, 'tokenId', { int: true, min: 0 }), text: str(o, 'text') };
    case 'generated': {
      const r = obj(o.result, 'result');
      return {
        type: 'generated', id,
        result: {
          promptTokens: num(r, 'promptTokens', { int: true, min: 0 }),
          prefilledTokens: num(r, 'prefilledTokens', { int: true, min: 0 }),
          ids: intArray(r, 'ids'), text: str(r, 'text'),
          finishReason: oneOf(r, 'finishReason', ['eos', 'length', 'cancelled'] as const),
          ...(r.cache === undefined ? {} : { cache: prefixCacheResult(obj(r.cache, 'cache')) }),
          ...(r.attention === undefined ? {} : { attention: attentionReport(obj(r.attention, 'attention')) }),
          ...(r.segments === undefined ? {} : { segments: segmentsResult(obj(r.segments, 'segments')) }),
        },
      };
    }
    case 'tokens':
      return { type: 'tokens', id, ids: intArray(o, 'ids') };
    case 'error':
      return { type: 'error', id, code: oneOf(o, 'code', ERROR_CODES), message: str(o, 'message') };
    default:
      throw new ProtocolError(`unknown reply type ${JSON.stringify(o.type)}`);
  }
}
