// The answer pipeline on a worker thread of the extension host: reading and tokenizing the
// workspace (src/context through src/qa) is synchronous CPU work that would freeze the editor on
// the main thread. The worker owns the engine clients and talks to EngineAnswerer
// (engineAnswerer.ts) with the messages below. No VS Code API here.
// Engines: the native EngineClient (engine process: CPU or CUDA) and WebGpuEngineClient, whose
// engine runs in a webview: the main thread opens it on request ('gpu-open') and relays its
// protocol messages ('gpu'). Selection: cuda/cpu as asked; webgpu forced; auto = the native
// engine's choice, then WebGPU where no CUDA is usable; WebGPU failing falls back to the CPU.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { EngineClient, EngineError } from '../engine/client';
import { WebGpuEngineClient } from '../engine/webgpu';
import type { Backend, ModelInfo, PrefillPrecision } from '../engine/protocol';
import { parseConfig } from '../model/config';
import type { ModelArch } from '../model/native';
import { ask, AskError, explain, type AnswerEngine, type AskOptions } from '../qa';
import type { AskRequest, AskResult, EngineStatus, ProgressPhase } from './answerer';
import type { AttentionSettings } from '../trace/attention';
import { askTrace } from '../trace/askTrace';

/** What the worker needs to answer one question (settings and workspace facts read on the main thread). */
export interface WorkerAsk {
  type: 'ask';
  id: number;
  root: string;
  request: AskRequest;
  modelDir: string;
  backend: Backend;
  /** The CUDA backend's prefill precision (the native engine's other backends and WebGPU ignore it). */
  prefillPrecision: PrefillPrecision;
  kvBlockSize: number;
  contextTokens: number;
  maxNewTokens: number;
  /** Decode attention (PrHS or a baseline); dense attention when its mode is "dense". */
  attention: AttentionSettings;
  kvAssembly: 'prefix' | 'segments';
  segmentRecompute: number;
  exclude: string[];
  recentFiles: string[];
  /** Keep the repository's KV on disk here (absent: the disk cache is off). */
  cache?: { dir: string; maxBytes: number };
}

export type ToWorker =
  | WorkerAsk
  | { type: 'cancel'; id: number }
  | { type: 'dispose' }
  /** The WebGPU webview is open (or failed to open: error); modelUri is the model folder as it fetches it. */
  | { type: 'gpu-opened'; modelUri: string } | { type: 'gpu-open-failed'; message: string }
  | { type: 'gpu'; message: unknown }
  | { type: 'gpu-gone'; why: string };

export type FromWorker =
  | { type: 'progress'; id: number; phase: ProgressPhase; done: number; total: number }
  | { type: 'token'; id: number; text: string }
  | { type: 'done'; id: number; result: AskResult }
  | { type: 'failed'; id: number; code: string; message: string }
  | { type: 'status'; status: EngineStatus | null }
  /** Open the WebGPU engine's webview for this model folder (closing one open for another). */
  | { type: 'gpu-open'; modelDir: string }
  | { type: 'gpu-close' }
  /** Something users should know that did not fail the question (WebGPU fell back to the CPU). */
  | { type: 'notice'; message: string }
  | { type: 'gpu'; message: unknown }
  | { type: 'log'; level: 'debug' | 'info' | 'error'; message: string };

/** Errors that carry a code the panel turns into actions. */
class Failure extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

interface Loaded {
  key: string;
  info: ModelInfo;
  arch: ModelArch;
  engine: AnswerEngine;
}

/** How long the WebGPU webview may take to start and load before the CPU takes over. */
const GPU_LOAD_TIMEOUT_MS = 120_000;

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const running = new Map<number, AbortController>();
let client: EngineClient | null = null;
let loaded: Loaded | null = null;
let note: string | null = null;
let gpu: { client: WebGpuEngineClient; deliver: (message: unknown) => void; opened: Promise<string> } | null = null;
let gpuOpened: { resolve: (uri: string) => void; reject: (e: Error) => void } | null = null;
/** Why WebGPU failed while answering: later loads use the CPU until the settings change. */
let gpuBroken: { key: string; why: string } | null = null;

function status(): EngineStatus | null {
  if (!loaded) return null;
  const i = loaded.info;
  return { backend: i.backend, backendReason: note ?? i.backendReason, model: i.modelDir, contextTokens: i.contextTokens, weightBytes: i.weightBytes };
}

function engine(): EngineClient {
  if (client) return client;
  const c = new EngineClient({ enginePath: (workerData as { enginePath: string }).enginePath });
  c.on('stderr', (text: string) => post({ type: 'log', level: 'debug', message: `engine: ${text.trimEnd()}` }));
  c.on('crash', (info: { message: string }) => {
    note = 'restarting after a crash';
    post({ type: 'log', level: 'error', message: info.message });
    post({ type: 'status', status: status() });
  });
  c.on('restart', () => {
    note = null;
    post({ type: 'log', level: 'info', message: 'engine restarted' });
    post({ type: 'status', status: status() });
  });
  return (client = c);
}

/** The WebGPU engine, its webview opened by the main thread; the messages relayed through it. */
function gpuEngine(modelDir: string): NonNullable<typeof gpu> {
  if (gpu) return gpu;
  const listeners = new Set<(m: unknown) => void>();
  let modelUri = '';
  const client = new WebGpuEngineClient(
    {
      postMessage: (message) => post({ type: 'gpu', message }),
      onDidReceiveMessage: (l) => { listeners.add(l); return { dispose: () => listeners.delete(l) }; },
    },
    () => modelUri, // the webview's URL of the model folder, known once the main thread opened it
  );
  const opened = new Promise<string>((resolve, reject) => (gpuOpened = { resolve, reject })).then((uri) => (modelUri = uri));
  opened.catch(() => undefined);
  post({ type: 'gpu-open', modelDir });
  return (gpu = { client, opened, deliver: (m) => { for (const l of listeners) l(m); } });
}

function dropGpu(why: string): void {
  if (!gpu) return;
  gpu.client.webviewGone(why);
  if (why !== 'was closed') post({ type: 'gpu-close' });
  gpuOpened?.reject(new EngineError('backend-unavailable', `the WebGPU engine webview ${why}`));
  gpu = null;
  gpuOpened = null;
  if (loaded?.info.backend === 'webgpu') {
    loaded = null;
    post({ type: 'status', status: null });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new EngineError('timeout', `${what} took longer than ${ms / 1000} s`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Loads the model on WebGPU, or explains why not (no adapter, lost device, model above the adapter's limits). */
async function loadOnGpu(m: WorkerAsk): Promise<{ info: ModelInfo; client: WebGpuEngineClient } | { failed: string }> {
  try {
    const g = gpuEngine(m.modelDir);
    await withTimeout(g.opened, GPU_LOAD_TIMEOUT_MS, 'opening the WebGPU engine webview');
    const info = await withTimeout(
      g.client.load(
        { modelDir: m.modelDir, kvBlockSize: m.kvBlockSize, contextTokens: m.contextTokens },
        (p) => post({ type: 'progress', id: m.id, phase: 'load', done: p.done, total: p.total }),
      ),
      GPU_LOAD_TIMEOUT_MS, 'loading the model on WebGPU',
    );
    return { info, client: g.client };
  } catch (e) {
    if (e instanceof EngineError && (e.code === 'model-missing' || e.code === 'model-invalid')) throw e;
    dropGpu('failed');
    return { failed: (e as Error).message };
  }
}

async function loadNative(m: WorkerAsk, backend: WorkerAsk['backend']): Promise<ModelInfo> {
  return engine().load(
    { modelDir: m.modelDir, backend, prefillPrecision: m.prefillPrecision, kvBlockSize: m.kvBlockSize, contextTokens: m.contextTokens },
    (p) => post({ type: 'progress', id: m.id, phase: 'load', done: p.done, total: p.total }),
  );
}

/** Picks and loads the engine: see the selection rule at the top. */
async function loadEngine(m: WorkerAsk, key: string): Promise<{ info: ModelInfo; engine: AnswerEngine }> {
  const broken = gpuBroken?.key === key ? gpuBroken.why : null;
  if (m.backend === 'webgpu' || m.backend === 'auto') {
    let fallback: ModelInfo | null = null;
    if (m.backend === 'auto') {
      // The native engine knows whether CUDA is usable; WebGPU only where it is not.
      fallback = await loadNative(m, 'auto');
      if (fallback.backend === 'cuda' || !/^no usable CUDA/.test(fallback.backendReason)) return { info: fallback, engine: engine() };
    }
    const why = broken ?? (await (async () => {
      const r = await loadOnGpu(m);
      if ('failed' in r) return r.failed;
      const asked = m.backend === 'webgpu' ? 'WebGPU asked for' : `no usable CUDA: WebGPU`;
      return { ...r.info, backendReason: `${asked} (${r.info.backendReason})` };
    })());
    if (typeof why !== 'string') {
      if (fallback) await closeNative(); // the model now lives on the GPU; free the engine process
      return { info: why, engine: gpu!.client };
    }
    const info = fallback ?? (await loadNative(m, 'cpu'));
    post({ type: 'log', level: 'error', message: `WebGPU unavailable: ${why}` });
    post({ type: 'notice', message: `WebGPU is unavailable (${why}): answering on the CPU.` });
    return { info: { ...info, backend: 'cpu', backendReason: `WebGPU unavailable (${why}): CPU` }, engine: engine() };
  }
  return { info: await loadNative(m, m.backend), engine: engine() };
}

async function closeNative(): Promise<void> {
  const c = client;
  client = null;
  await c?.dispose();
}

function sentence(s: string): string {
  const t = s.trim();
  return t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
}

function readArch(modelDir: string): ModelArch {
  const file = join(modelDir, 'config.json');
  if (!existsSync(file)) throw new Failure('model-missing', `${file} is missing.`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Failure('model-invalid', `${file}: not valid JSON (${(e as Error).message}).`);
  }
  try {
    return parseConfig(json, file);
  } catch (e) {
    throw new Failure('model-invalid', sentence((e as Error).message));
  }
}

async function ensureLoaded(m: WorkerAsk): Promise<Loaded> {
  if (!m.modelDir) throw new Failure('model-missing', 'No model is set.');
  if (!existsSync(m.modelDir) || !statSync(m.modelDir).isDirectory()) throw new Failure('model-missing', `The model folder ${m.modelDir} does not exist.`);
  const key = JSON.stringify([m.modelDir, m.backend, m.prefillPrecision, m.kvBlockSize, m.contextTokens]);
  if (loaded?.key === key) return loaded;
  const arch = readArch(m.modelDir);
  const { info, engine: e } = await loadEngine(m, key);
  post({ type: 'log', level: 'info', message: `model loaded: ${info.modelDir} on ${info.backend} (${info.backendReason}), ${info.contextTokens} context tokens` });
  loaded = { key, info, arch, engine: e };
  post({ type: 'status', status: status() });
  return loaded;
}

/** Follow-ups carry the last turns so the model sees what "it" refers to. */
function withHistory(request: AskRequest): string {
  if (!request.history.length) return request.question;
  const earlier = request.history.map((t) => `Q: ${t.question}\nA: ${t.answer}`).join('\n\n');
  return `Earlier in this conversation:\n${earlier}\n\nFollow-up question: ${request.question}`;
}

/** Asks with as many earlier turns as leave room for the repository (none, on a small context). */
async function askWithRoom(request: AskRequest, root: string, options: AskOptions) {
  for (let turns = request.history.length; ; turns--) {
    try {
      return await ask(withHistory({ ...request, history: request.history.slice(request.history.length - turns) }), root, options);
    } catch (e) {
      // AskError before any work: the prompt left no room. Drop the oldest turn and try again.
      if (!(e instanceof AskError) || turns === 0) throw e;
    }
  }
}

/** How much of the prompt ran and what the disk cache did (the log shows KV reuse at work). */
function prefillReport(r: Awaited<ReturnType<typeof ask>>): string {
  const c = r.cache;
  const disk = c ? `; disk cache: restored ${c.restoredTokens}, saved ${c.savedTokens}${c.notes.length ? ` (${c.notes.join('; ')})` : ''}` : '';
  return `prompt ${r.tokens.prompt} tokens, prefilled ${r.tokens.prefilled}${disk}`;
}

const CANCELLED: AskResult = { text: '', finishReason: 'cancelled', promptTokens: 0, trace: null, files: [] };

async function answer(m: WorkerAsk, signal: AbortSignal): Promise<AskResult> {
  // What the answer was doing, for the log line of a cancelled answer.
  let doing = 'loading the model';
  const started = Date.now();
  const logCancelled = () => post({ type: 'log', level: 'info', message: `answer ${m.id} cancelled after ${Date.now() - started} ms, while ${doing}` });
  try {
    const l = await ensureLoaded(m);
    doing = 'reading the workspace';
    const texts: string[] = [];
    const options: AskOptions = {
      client: l.engine,
      maxNewTokens: m.maxNewTokens,
      ...(m.attention.mode === 'dense' ? {} : { attention: m.attention, trace: true }),
      ...(m.kvAssembly === 'segments' ? { kvAssembly: 'segments' as const, segmentRecompute: m.segmentRecompute } : {}),
      exclude: m.exclude,
      recentFiles: m.recentFiles,
      ...(m.cache ? { cache: m.cache } : {}),
      signal,
      onContext: () => { doing = 'reading into the model'; }, // the generate request goes to the engine now
      onToken: (text) => {
        doing = 'generating';
        texts.push(text);
        post({ type: 'token', id: m.id, text });
      },
      onProgress: (p) => {
        if (p.phase === 'prefill') doing = 'reading into the model';
        post({ type: 'progress', id: m.id, phase: p.phase === 'prefill' ? 'prefill' : 'index', done: p.done, total: p.total ?? p.done });
      },
    };
    const sel = m.request.selection;
    const r = sel ? await explain(sel.text, join(m.root, sel.file), m.root, options) : await askWithRoom(m.request, m.root, options);
    post({ type: 'log', level: 'info', message: prefillReport(r) });
    if (r.finishReason === 'cancelled') logCancelled();
    // The engine's per-step selections with sparse attention; a dense trace (every block) otherwise.
    let next = 0;
    const trace = askTrace({
      result: r,
      modelName: l.info.modelDir.split(/[\\/]/).filter(Boolean).slice(-2).join('/'),
      arch: l.arch,
      kvBlockSize: l.info.kvBlockSize,
      tokenText: () => texts[next++] ?? '', // called once per generated token, in order
    });
    return { text: r.answer, finishReason: r.finishReason, promptTokens: r.tokens.prompt, trace, files: r.context.files.map((f) => ({ path: f.path, lines: f.lines })) };
  } catch (e) {
    if (e instanceof EngineError) {
      if (e.code === 'cancelled') {
        logCancelled();
        return CANCELLED;
      }
      if (loaded?.info.backend === 'webgpu' && !signal.aborted) {
        // Lost device, closed webview, a kernel error: this question failed; the next runs on the CPU.
        gpuBroken = { key: loaded.key, why: e.message };
        dropGpu('failed');
        loaded = null;
        post({ type: 'status', status: null });
        throw new Failure('backend-unavailable', `${sentence(`the WebGPU engine failed: ${e.message}`)} Retry to answer on the CPU.`);
      }
      if (e.code === 'model-invalid' || e.code === 'model-missing' || e.code === 'backend-unavailable') {
        loaded = null;
        post({ type: 'status', status: null });
      }
      throw new Failure(e.code, sentence(e.message));
    }
    if (signal.aborted) {
      logCancelled();
      return CANCELLED;
    }
    if (e instanceof AskError) throw new Failure('prompt-too-long', sentence(e.message));
    throw e;
  }
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'cancel') {
    const answering = running.get(m.id);
    answering?.abort(); // the engine client hands the engine its cancel in here (abort listeners run at once)
    // Said after the abort, so the line is proof the cancel was passed on (the e2e Stop test waits for it).
    post({ type: 'log', level: 'info', message: `answer ${m.id}: Stop asked ${answering ? 'while it ran: passed on' : 'after it ended'}` });
  } else if (m.type === 'gpu') {
    gpu?.deliver(m.message);
  } else if (m.type === 'gpu-opened') {
    gpuOpened?.resolve(m.modelUri);
  } else if (m.type === 'gpu-open-failed') {
    gpuOpened?.reject(new EngineError('backend-unavailable', m.message));
  } else if (m.type === 'gpu-gone') {
    dropGpu(m.why);
  } else if (m.type === 'dispose') {
    for (const a of running.values()) a.abort();
    void Promise.all([client?.dispose(), gpu?.client.dispose()]).finally(() => process.exit(0));
  } else {
    const abort = new AbortController();
    running.set(m.id, abort);
    answer(m, abort.signal).then(
      (result) => post({ type: 'done', id: m.id, result }),
      (e: unknown) => post({ type: 'failed', id: m.id, code: e instanceof Failure ? e.code : 'internal', message: e instanceof Error ? e.message : String(e) }),
    ).finally(() => running.delete(m.id));
  }
});
