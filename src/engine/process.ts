// The engine process: started by EngineClient with child_process.fork, it loads the native addon,
// the model and its tokenizer, and answers protocol requests over IPC. It is the only place the
// addon runs, so a fault in native code ends this process and never the editor.
// Every message is validated; no error ends the process. Requests run one at a time, in order;
// `cancel` is handled at once, and long work yields to the event loop so a cancel is seen.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cacheFingerprint, PrefixDiskCache } from '../cache';
import { ModelError } from '../model/errors';
import { readModelSpec } from '../model/loader';
import type { NativeAddon, NativeModel, NativeModelSpec } from '../model/native';
import { Sampler } from '../model/sampling';
import { assembleSegments, layoutError, SegmentStore, type AssemblyResult } from './kvSegments';
import { PrefillPieces } from './prefillPieces';
import { TextTokenizer } from '../model/tokenizer';
import {
  parseRequest, ProtocolError,
  type AttentionReport, type ErrorCode, type GenerateRequest, type GenerateResult, type LoadRequest, type ModelInfo, type PrefixCacheResult, type Reply, type Request,
  type StepHeadSelection,
} from './protocol';
import type { AttentionSettings } from '../trace/attention';

/** An error meant for the client, with its protocol code. */
class EngineFailure extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

interface Loaded {
  model: NativeModel;
  tokenizer: TextTokenizer;
  info: ModelInfo;
  /**
   * The sequence kept after the last generation and the ids it holds, for prefix reuse. `exact`: its
   * first positions that equal a prefill (absent: all); KV assembled from segments is approximate after.
   */
  cached: { seq: number; ids: number[]; exact?: number } | null;
  spec: NativeModelSpec;
  /** The disk cache of prompt prefixes, made on first use (src/cache/). */
  disk: PrefixDiskCache | null;
  /** Per-file KV segments for kvAssembly 'segments' (kvSegments.ts), made on first use. */
  segments: SegmentStore | null;
}

let addon: NativeAddon | null = null;
let loaded: Loaded | null = null;
/** Ids of generate requests asked to stop (queued or running). */
const cancelled = new Set<number>();
let queue: Promise<void> = Promise.resolve();

function send(reply: Reply): void {
  process.send?.(reply);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The addon: $REPO_LENS_ADDON, else native/build/Release/repo_lens.node under the extension root. */
export function addonPath(): string {
  const fromEnv = process.env.REPO_LENS_ADDON;
  if (fromEnv) return fromEnv;
  // Bundled: <root>/dist/engine.js. From source (tests through tsx): <root>/src/engine/process.ts.
  const candidates = [join(__dirname, '..', 'native', 'build', 'Release', 'repo_lens.node'), join(__dirname, '..', '..', 'native', 'build', 'Release', 'repo_lens.node')];
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
}

function loadAddon(): NativeAddon {
  if (addon) return addon;
  const path = addonPath();
  if (!existsSync(path)) {
    throw new EngineFailure('backend-unavailable', `${path}: the native addon is missing (build it with "npm run build:native", or set REPO_LENS_ADDON)`);
  }
  const module = { exports: {} as NativeAddon };
  try {
    process.dlopen(module, path);
  } catch (e) {
    throw new EngineFailure('backend-unavailable', `${path}: the native addon does not load (${(e as Error).message})`);
  }
  addon = module.exports;
  return addon;
}

async function handle(request: Request): Promise<void> {
  switch (request.type) {
    case 'load':
      return load(request);
    case 'generate':
      return generate(request);
    case 'tokenize': {
      const { tokenizer } = requireLoaded();
      send({ type: 'tokens', id: request.id, ids: tokenizer.encode(request.text, { addSpecialTokens: request.addSpecialTokens }) });
      return;
    }
    case 'cancel':
    case 'shutdown':
      return; // handled on arrival
  }
}

function requireLoaded(): Loaded {
  if (!loaded) throw new EngineFailure('not-loaded', 'no model is loaded: send a load request first');
  return loaded;
}

/**
 * The backend to run on: the one asked for if usable (else an error); 'auto' takes CUDA where a
 * usable GPU answers (dense and sparse attention both run there: the selection on the host, the
 * attention over the chosen blocks on the GPU), else the CPU, with the reason.
 */
function chooseBackend(native: NativeAddon, asked: LoadRequest['backend']): { backend: 'cpu' | 'cuda'; reason: string } {
  if (asked === 'webgpu') throw new EngineFailure('backend-unavailable', 'the native engine has no WebGPU backend (WebGPU runs in the webview engine)');
  const cuda = native.backends().find((b) => b.name === 'cuda');
  if (asked === 'cpu') return { backend: 'cpu', reason: 'CPU asked for' };
  if (cuda?.available) return { backend: 'cuda', reason: asked === 'cuda' ? 'CUDA asked for' : 'auto: a usable CUDA GPU' };
  const why = cuda?.reason ?? 'this build has no CUDA backend';
  if (asked === 'cuda') throw new EngineFailure('backend-unavailable', `CUDA was asked for but cannot be used: ${why}`);
  return { backend: 'cpu', reason: `no usable CUDA (${why}): CPU` };
}

async function load(request: LoadRequest): Promise<void> {
  send({ type: 'progress', id: request.id, phase: 'load', done: 0, total: 3 });
  const native = loadAddon();
  const chosen = chooseBackend(native, request.backend);
  const spec: NativeModelSpec = {
    ...readModelSpec(request.modelDir, { kvBlockSize: request.kvBlockSize, threads: request.threads, contextTokens: request.contextTokens }),
    prefillPrecision: request.prefillPrecision ?? 'float32',  // used by CUDA only; the CPU ignores it
  };
  send({ type: 'progress', id: request.id, phase: 'load', done: 1, total: 3 });
  const tokenizer = TextTokenizer.load(request.modelDir);
  send({ type: 'progress', id: request.id, phase: 'load', done: 2, total: 3 });
  await yieldToEventLoop();
  unload();
  let model: NativeModel;
  try {
    model = native.loadModel({ ...spec, backend: chosen.backend });
  } catch (e) {
    if (chosen.backend !== 'cuda' || request.backend === 'cuda') throw e;
    // auto: a GPU that answered but cannot start the backend leaves the model on the CPU.
    model = native.loadModel({ ...spec, backend: 'cpu' });
    chosen.reason = `CUDA could not start (${e instanceof Error ? e.message : String(e)}): CPU`;
  }
  const stats = model.stats();
  const info: ModelInfo = {
    modelDir: request.modelDir,
    backend: stats.backend,
    contextTokens: spec.contextTokens,
    vocabSize: spec.arch.vocabSize,
    numLayers: spec.arch.numLayers,
    numKvHeads: spec.arch.numKvHeads,
    kvBlockSize: spec.kvBlockSize,
    weightBytes: stats.weightBytes,
    // The status bar's tooltip shows it: say when the prefill runs on 16-bit operands, and what
    // the backend adds (e.g. cuBLASLt computing the CUDA prefill GEMM).
    backendReason: [
      chosen.reason,
      ...(stats.backend === 'cuda' && spec.prefillPrecision === 'half' ? ['prefill on 16-bit operands'] : []),
      ...(stats.backendDetail ? [stats.backendDetail] : []),
    ].join('; '),
  };
  loaded = { model, tokenizer, info, cached: null, spec, disk: null, segments: null };
  send({ type: 'progress', id: request.id, phase: 'load', done: 3, total: 3 });
  send({ type: 'ready', id: request.id, info });
}

function unload(): void {
  if (!loaded) return;
  const old = loaded;
  loaded = null;
  old.model.dispose();
}

function promptIds(request: GenerateRequest, l: Loaded): number[] {
  if ('text' in request.prompt) return l.tokenizer.encode(request.prompt.text, { addSpecialTokens: true });
  const bad = request.prompt.ids.find((id) => id >= l.info.vocabSize);
  if (bad !== undefined) throw new EngineFailure('bad-request', `prompt.ids: token id ${bad} is outside the vocabulary (size ${l.info.vocabSize})`);
  return request.prompt.ids;
}

/** Length of the common start of two id lists. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

function attentionReport(model: NativeModel, settings: AttentionSettings, steps: StepHeadSelection[][][] | undefined): AttentionReport {
  const c = model.attentionCounters();
  const counters = c
    ? { steps: c.steps, scoringPasses: c.scoringPasses, certifyPasses: c.certifyPasses, certified: c.certified, expanded: c.expanded, entriesRead: c.entriesRead, entriesContext: c.entriesContext }
    : { steps: 0, scoringPasses: 0, certifyPasses: 0, certified: 0, expanded: 0, entriesRead: 0, entriesContext: 0 };
  return { settings, counters, ...(steps ? { steps } : {}) };
}

async function generate(request: GenerateRequest): Promise<void> {
  const l = requireLoaded();
  const ids = promptIds(request, l);
  const context = l.info.contextTokens;
  if (ids.length === 0) throw new EngineFailure('bad-request', 'prompt: the prompt is empty');
  if (ids.length > context) {
    throw new EngineFailure('prompt-too-long', `the prompt has ${ids.length} tokens but the context holds ${context}: shorten it or raise contextTokens (the model allows ${context} here)`);
  }
  const assembly = request.kvAssembly;
  if (assembly && l.info.backend !== 'cpu') {
    throw new EngineFailure('backend-unavailable', `kvAssembly "segments": KV segment assembly runs on the cpu backend; this engine runs on ${l.info.backend}`);
  }
  const badLayout = assembly ? layoutError(assembly, ids.length) : null;
  if (badLayout) throw new EngineFailure('bad-request', badLayout);
  if (request.cache && request.cache.prefixTokens > ids.length) {
    throw new EngineFailure('bad-request', `cache.prefixTokens: ${request.cache.prefixTokens} is more than the prompt's ${ids.length} tokens`);
  }
  const cacheResult: PrefixCacheResult | undefined = request.cache ? { restoredTokens: 0, savedTokens: 0, notes: [] } : undefined;
  const done = (result: Omit<GenerateResult, 'promptTokens'>) => {
    cancelled.delete(request.id);
    if (cacheResult) cacheResult.notes.push(...diskCache(l).takeNotes());
    send({ type: 'generated', id: request.id, result: { promptTokens: ids.length, ...result, ...(cacheResult ? { cache: cacheResult } : {}) } });
  };
  if (cancelled.has(request.id)) return done({ prefilledTokens: 0, ids: [], text: '', finishReason: 'cancelled' });

  // A longer prefix on disk than in memory (e.g. the first question after a restart) replaces the kept sequence.
  if (request.cache && cacheResult) {
    const inMemory = l.cached ? commonPrefix(l.cached.ids, ids) : 0;
    const limit = Math.min(request.cache.prefixTokens, ids.length - 1);
    const restored = inMemory < limit ? diskCache(l).restore(l.model, ids, limit, inMemory, request.cache) : null;
    if (restored) {
      if (l.cached) l.model.freeSequence(l.cached.seq);
      l.cached = { seq: restored.seq, ids: ids.slice(0, restored.tokens) };
      cacheResult.restoredTokens = restored.tokens;
    }
  }

  // Reuse the kept sequence's KV for the prompt's common prefix (e.g. the repository text); at least
  // the last prompt token is run again, for its logits.
  let seq: number;
  let reused = 0;
  let exact = Infinity;
  if (l.cached) {
    // Only a prefill's KV is reused for a prefill; assembled KV only by another assembly.
    exact = l.cached.exact ?? Infinity;
    reused = Math.min(commonPrefix(l.cached.ids, ids), ids.length - 1, assembly ? Infinity : exact);
    if (!assembly) exact = Infinity; // everything after the reused (exact) part is prefilled now
    seq = l.cached.seq;
    l.cached = null;
    if (reused > 0) l.model.truncateSequence(seq, reused);
    else {
      l.model.freeSequence(seq);
      seq = l.model.newSequence();
    }
  } else {
    seq = l.model.newSequence();
  }
  let assembled: AssemblyResult | null = null;
  const pieces = new PrefillPieces();
  if (assembly && reused < assembly.end) {
    const keep = Math.max(0, ...assembly.starts.filter((start) => start <= reused));
    const segmentsStart = reused;
    try {
      assembled = await assembleSegments(l.model, ids, assembly, segmentStore(l), {
        fraction: assembly.recompute, policy: assembly.policy ?? 'query', question: ids.slice(assembly.end), block: l.info.kvBlockSize,
        pieces, base: { seq, keep },
        between: async (done) => {
          send({ type: 'progress', id: request.id, phase: 'prefill', done, total: ids.length - segmentsStart });
          await yieldToEventLoop();
          if (cancelled.has(request.id)) throw new AssemblyCancelled();
        },
      });
    } catch (e) {
      if (e instanceof AssemblyCancelled) return done({ prefilledTokens: 0, ids: [], text: '', finishReason: 'cancelled' });
      throw e;
    }
    seq = assembled.seq;
    reused = assembly.end;
    // Positions are a prefill's up to the first segment placed away from where it was prefilled.
    const head = assembly.starts[0];
    exact = Math.min(keep >= head ? exact : Infinity, Math.max(keep, assembly.starts.find((start) => start > head) ?? assembly.end));
  }
  const held = ids.slice(0, reused);
  let logits: Float32Array = new Float32Array(0);
  // Sparse decode attention: the prompt's last token is the first decode step, so every generated
  // token comes from a step that used it (docs/prhs.md).
  const sparse = request.attention && request.attention.mode !== 'dense' ? request.attention : null;
  const steps: StepHeadSelection[][][] = [];
  const recordStep = () => {
    const step = sparse && request.trace ? l.model.attentionStep() : null;
    if (step) steps.push(step.layers.map((heads) => heads.map((h) => ({ blocks: Array.from(h.blocks), source: h.source, deltaHat: h.deltaHat, delta: h.delta, expanded: h.expanded }))));
  };
  const prefillEnd = sparse ? ids.length - 1 : ids.length;
  try {
    for (let start = reused; start < prefillEnd; start = held.length) {
      const chunk = ids.slice(start, Math.min(prefillEnd, start + pieces.next));
      const last = start + chunk.length >= ids.length;
      const began = performance.now();
      logits = l.model.forward(seq, Int32Array.from(chunk), last ? 'last' : 'none');
      pieces.took(chunk.length, performance.now() - began);
      held.push(...chunk);
      send({ type: 'progress', id: request.id, phase: 'prefill', done: start + chunk.length - reused, total: ids.length - reused });
      await yieldToEventLoop();
      if (cancelled.has(request.id)) {
        l.cached = { seq, ids: held, ...(exact < held.length ? { exact } : {}) };
        return done({ prefilledTokens: held.length - reused + (assembled?.prefilled ?? 0), ids: [], text: '', finishReason: 'cancelled' });
      }
    }

    if (sparse) {
      l.model.setAttention(sparse);
      logits = l.model.forward(seq, Int32Array.of(ids[ids.length - 1]), 'last');
      held.push(ids[ids.length - 1]);
      recordStep();
    }
    const sampler = new Sampler(request.sampling);
    const streamer = l.tokenizer.streamer(ids);
    const out: number[] = [];
    let text = '';
    let finishReason: GenerateResult['finishReason'] = 'length';
    while (out.length < request.maxNewTokens) {
      const next = sampler.sample(logits);
      if (request.stopAtEos && l.tokenizer.eosIds.has(next)) {
        finishReason = 'eos';
        break;
      }
      out.push(next);
      const piece = streamer.push(next);
      text += piece;
      send({ type: 'token', id: request.id, tokenId: next, text: piece });
      if (out.length >= request.maxNewTokens || held.length + 1 > context) break;
      logits = l.model.forward(seq, Int32Array.of(next), 'last');
      held.push(next);
      recordStep();
      await yieldToEventLoop();
      if (cancelled.has(request.id)) {
        finishReason = 'cancelled';
        break;
      }
    }
    const rest = streamer.flush();
    if (rest) {
      text += rest;
      send({ type: 'token', id: request.id, tokenId: out[out.length - 1], text: rest });
    }
    const attention = sparse ? attentionReport(l.model, sparse, request.trace ? steps.slice(0, out.length) : undefined) : undefined;
    l.model.setAttention(null);
    l.cached = { seq, ids: held, ...(exact < held.length ? { exact } : {}) };
    if (request.cache && cacheResult && exact < request.cache.prefixTokens) {
      cacheResult.notes.push(`not saved: positions from ${exact} on were assembled from KV segments, not prefilled`);
    } else if (request.cache && cacheResult) {
      cacheResult.savedTokens = diskCache(l).save(l.model, seq, ids.slice(0, request.cache.prefixTokens), request.cache);
    }
    const segments = assembled ? { reused: assembled.segmentsReused, prefilled: assembled.segmentsPrefilled, recomputed: assembled.recomputed } : undefined;
    done({ prefilledTokens: ids.length - reused + (assembled?.prefilled ?? 0), ids: out, text, finishReason, ...(attention ? { attention } : {}), ...(segments ? { segments } : {}) });
  } catch (e) {
    // A failed forward leaves the sequence in an unknown state: never reuse it.
    l.model.setAttention(null);
    l.model.freeSequence(seq);
    throw e;
  }
}

/** Thrown by the assembly's progress hook when the request was cancelled. */
class AssemblyCancelled extends Error {}

/** The loaded model's segment store, holding at most one full context's KV. */
function segmentStore(l: Loaded): SegmentStore {
  if (!l.segments) {
    const a = l.spec.arch;
    l.segments = new SegmentStore(l.info.contextTokens * a.numLayers * 2 * a.numKvHeads * a.headDim * 4);
  }
  return l.segments;
}

/** The loaded model's disk cache; its notes also go to stderr (the extension's log). */
function diskCache(l: Loaded): PrefixDiskCache {
  if (!l.disk) {
    const fingerprint = cacheFingerprint({
      modelDir: l.info.modelDir,
      spec: l.spec,
      backend: l.info.backend,
      backendDetail: l.model.stats().backendDetail,
      addonPath: addonPath(),
    });
    const shape = { layers: l.spec.arch.numLayers, kvHeads: l.spec.arch.numKvHeads, headDim: l.spec.arch.headDim };
    l.disk = new PrefixDiskCache(fingerprint, shape, (note) => process.stderr.write(`repo-lens engine: disk cache: ${note}\n`));
  }
  return l.disk;
}

function failureOf(e: unknown): EngineFailure {
  if (e instanceof EngineFailure) return e;
  if (e instanceof ModelError) return new EngineFailure(/missing|does not exist/.test(e.message) ? 'model-missing' : 'model-invalid', e.message);
  if (e instanceof ProtocolError) return new EngineFailure('bad-request', e.message);
  return new EngineFailure('internal', (e as Error)?.message ?? String(e));
}

function onMessage(raw: unknown): void {
  let request: Request;
  try {
    request = parseRequest(raw);
  } catch (e) {
    const id = typeof (raw as { id?: unknown })?.id === 'number' && Number.isInteger((raw as { id: number }).id) ? (raw as { id: number }).id : 0;
    send({ type: 'error', id: Math.max(0, id), code: 'bad-request', message: `invalid request: ${(e as Error).message}` });
    return;
  }
  if (request.type === 'cancel') {
    cancelled.add(request.target);
    return;
  }
  if (request.type === 'shutdown') {
    queue = queue.then(() => {
      unload();
      process.exit(0);
    });
    return;
  }
  queue = queue.then(async () => {
    try {
      await handle(request);
    } catch (e) {
      const f = failureOf(e);
      cancelled.delete(request.id);
      send({ type: 'error', id: request.id, code: f.code, message: f.message });
    }
  });
}

if (require.main === module && process.send) {
  process.on('message', onMessage);
  // The client went away (editor closed, CLI done): nothing left to serve.
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C in a terminal reaches the whole process group: the client decides (it cancels, then disconnects).
  process.on('SIGINT', () => {});
  // A bug in our own code must not end the process; it is reported and the next request runs.
  process.on('uncaughtException', (e) => process.stderr.write(`repo-lens engine: uncaught ${e.stack ?? e}\n`));
  process.on('unhandledRejection', (e) => process.stderr.write(`repo-lens engine: unhandled ${(e as Error)?.stack ?? e}\n`));
}
