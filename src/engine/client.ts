// EngineClient: runs the engine process (dist/engine.js) and speaks the protocol with it.
// Used by the CLI and the extension alike (no VS Code here).
// - Correlates replies with requests by id; streams tokens through callbacks or async iteration.
// - No request ever hangs: if the process dies, every pending request rejects with `engine-crashed`
//   (saying how it ended: exit code or signal, and its last stderr lines); if a request hears
//   nothing for `replyTimeoutMs`, it rejects with `timeout` and the stuck process is killed.
// - After a crash the next request starts a new process and first reloads the last model.
// Events: 'crash' (CrashInfo) when the process ends unexpectedly; 'restart' when a new process
// starts after one; 'stderr' (text) for the engine's own diagnostics.

import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { AttentionSettings } from '../trace/attention';
import {
  parseReply, ProtocolError,
  type Backend, type ErrorCode, type GenerateResult, type KvAssemblyRequest, type LoadRequest, type ModelInfo, type PrefillPrecision, type PrefixCacheRequest, type Prompt, type Reply, type Request, type SamplingParams,
} from './protocol';

export class EngineError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
  }
}

export interface EngineClientOptions {
  /** The engine bundle; default: engine.js next to this bundle (dist/). */
  enginePath?: string;
  /** Node options for the engine process (e.g. ['--import', 'tsx'] to run src/engine/process.ts). */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Longest silence (no reply of any kind) for one request before it fails with `timeout`. Default 5 minutes. */
  replyTimeoutMs?: number;
}

export interface LoadOptions {
  modelDir: string;
  backend?: Backend;
  kvBlockSize?: number;
  /** 0: the model's own context length. */
  contextTokens?: number;
  /** 0: one per core. */
  threads?: number;
  /** CUDA prefill precision (default 'float32'); other backends ignore it. */
  prefillPrecision?: PrefillPrecision;
}

export interface Progress {
  phase: 'load' | 'prefill';
  done: number;
  total: number;
}

export interface GenerateOptions {
  prompt: Prompt;
  maxNewTokens: number;
  sampling?: Partial<SamplingParams>;
  stopAtEos?: boolean;
  /** Restore the prompt's prefix from / save it to the disk cache (see PrefixCacheRequest). */
  cache?: PrefixCacheRequest;
  /** Sparse decode attention and whether to return each step's selection (see GenerateRequest). */
  attention?: AttentionSettings;
  trace?: boolean;
  /** Build the repository's KV from per-file segments instead of reusing a prefix (see KvAssemblyRequest). */
  kvAssembly?: KvAssemblyRequest;
  onToken?: (token: { tokenId: number; text: string }) => void;
  onProgress?: (progress: Progress) => void;
  /** Aborting cancels the generation (it then resolves with finishReason 'cancelled'). */
  signal?: AbortSignal;
}

export type GenerationEvent =
  | { type: 'progress'; phase: 'load' | 'prefill'; done: number; total: number }
  | { type: 'token'; tokenId: number; text: string };

export interface CrashInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** A sentence for the user: how the process ended and its last diagnostics. */
  message: string;
}

interface Pending {
  request: Request;
  resolve: (reply: Reply) => void;
  reject: (error: EngineError) => void;
  onReply?: (reply: Reply) => void;
  timer?: NodeJS.Timeout;
}

const DEFAULT_SAMPLING: SamplingParams = { temperature: 0, topP: 1, seed: 0 };

/** A running generation: await `result`, or iterate its events; `cancel()` stops it. */
export class Generation implements AsyncIterable<GenerationEvent> {
  readonly result: Promise<GenerateResult>;
  private readonly events: GenerationEvent[] = [];
  private wake: (() => void) | null = null;
  private finished = false;
  private failure: unknown = null;

  constructor(readonly id: number, run: (push: (e: GenerationEvent) => void) => Promise<GenerateResult>, private readonly cancelFn: () => void) {
    this.result = run((e) => {
      this.events.push(e);
      this.notify();
    }).then(
      (r) => {
        this.finished = true;
        this.notify();
        return r;
      },
      (e) => {
        this.finished = true;
        this.failure = e;
        this.notify();
        throw e;
      },
    );
    // Iteration reports the failure itself; an unawaited `result` must not crash the process.
    this.result.catch(() => {});
  }

  cancel(): void {
    this.cancelFn();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
    for (;;) {
      const next = this.events.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.finished) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

export class EngineClient extends EventEmitter {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lastLoad: LoadOptions | null = null;
  /** Set after a crash: the next request first restarts the engine and reloads `lastLoad`. */
  private crashed = false;
  private starting: Promise<void> | null = null;
  private stderrTail = '';
  private disposed = false;
  private info: ModelInfo | null = null;
  /** Cancels asked for before their request reached the engine. */
  private readonly earlyCancels = new Set<number>();
  private readonly enginePath: string;
  private readonly replyTimeoutMs: number;

  constructor(private readonly options: EngineClientOptions = {}) {
    super();
    this.enginePath = options.enginePath ?? join(__dirname, 'engine.js');
    this.replyTimeoutMs = options.replyTimeoutMs ?? 5 * 60_000;
  }

  /** The model loaded last (null before the first load). */
  get modelInfo(): ModelInfo | null {
    return this.info;
  }

  /** The engine process id, when one runs (tests use it to kill the process). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async load(options: LoadOptions, onProgress?: (p: Progress) => void): Promise<ModelInfo> {
    await this.ensureProcess(false);
    const info = await this.loadNow(options, onProgress);
    this.lastLoad = options;
    return info;
  }

  generate(options: GenerateOptions): Generation {
    const id = this.nextId++;
    const sampling = { ...DEFAULT_SAMPLING, ...options.sampling };
    return new Generation(
      id,
      async (push) => {
        // Listen before the first await: an abort while the engine (re)starts, e.g. reloading the
        // model after a crash, would otherwise be lost. Until the request is sent, cancel() keeps
        // it in earlyCancels and request() sends it right after the request.
        const onAbort = () => this.cancel(id);
        if (options.signal?.aborted) this.earlyCancels.add(id);
        options.signal?.addEventListener('abort', onAbort, { once: true });
        try {
          await this.ensureProcess(true);
          const reply = await this.request(
            {
              type: 'generate', id, prompt: options.prompt, maxNewTokens: options.maxNewTokens, sampling, stopAtEos: options.stopAtEos ?? true,
              ...(options.cache ? { cache: options.cache } : {}),
              ...(options.attention ? { attention: options.attention, trace: options.trace ?? false } : {}),
              ...(options.kvAssembly ? { kvAssembly: options.kvAssembly } : {}),
            },
            (r) => {
              if (r.type === 'token') {
                options.onToken?.({ tokenId: r.tokenId, text: r.text });
                push({ type: 'token', tokenId: r.tokenId, text: r.text });
              } else if (r.type === 'progress') {
                options.onProgress?.({ phase: r.phase, done: r.done, total: r.total });
                push({ type: 'progress', phase: r.phase, done: r.done, total: r.total });
              }
            },
          );
          if (reply.type !== 'generated') throw new EngineError('internal', `engine answered a generate request with "${reply.type}"`);
          return reply.result;
        } finally {
          options.signal?.removeEventListener('abort', onAbort);
          this.earlyCancels.delete(id); // a cancel never sent: the engine did not start
        }
      },
      () => this.cancel(id),
    );
  }

  async tokenize(text: string, addSpecialTokens: boolean): Promise<number[]> {
    await this.ensureProcess(true);
    const reply = await this.request({ type: 'tokenize', id: this.nextId++, text, addSpecialTokens });
    if (reply.type !== 'tokens') throw new EngineError('internal', `engine answered a tokenize request with "${reply.type}"`);
    return reply.ids;
  }

  /** Asks the engine to stop request `target`; it then answers that request with finishReason 'cancelled'. */
  cancel(target: number): void {
    if (this.child?.connected && this.pending.has(target)) this.child.send({ type: 'cancel', id: this.nextId++, target } satisfies Request);
    else this.earlyCancels.add(target);
  }

  /** Stops the engine process; pending requests reject. */
  async dispose(): Promise<void> {
    this.disposed = true;
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.send({ type: 'shutdown', id: this.nextId++ } satisfies Request);
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }

  private async loadNow(options: LoadOptions, onProgress?: (p: Progress) => void): Promise<ModelInfo> {
    const request: LoadRequest = {
      type: 'load', id: this.nextId++, modelDir: options.modelDir, backend: options.backend ?? 'auto',
      kvBlockSize: options.kvBlockSize ?? 32, contextTokens: options.contextTokens ?? 0, threads: options.threads ?? 0,
      ...(options.prefillPrecision === undefined ? {} : { prefillPrecision: options.prefillPrecision }),
    };
    const reply = await this.request(request, (r) => {
      if (r.type === 'progress') onProgress?.({ phase: r.phase, done: r.done, total: r.total });
    });
    if (reply.type !== 'ready') throw new EngineError('internal', `engine answered a load request with "${reply.type}"`);
    this.info = reply.info;
    return reply.info;
  }

  /** Starts the process if none runs; after a crash, also reloads the last model (when `reload`). */
  private async ensureProcess(reload: boolean): Promise<void> {
    if (this.disposed) throw new EngineError('internal', 'the engine client was disposed');
    if (this.child && !this.crashed) return;
    if (!this.starting) {
      this.starting = (async () => {
        const restarting = this.crashed;
        this.spawn();
        this.crashed = false;
        if (restarting) this.emit('restart');
        if (restarting && reload && this.lastLoad) await this.loadNow(this.lastLoad);
      })().finally(() => (this.starting = null));
    }
    await this.starting;
  }

  private spawn(): void {
    this.stderrTail = '';
    const child = fork(this.enginePath, [], {
      execArgv: this.options.execArgv ?? [],
      env: this.options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child = child;
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.stderrTail = (this.stderrTail + text).slice(-2000);
      this.emit('stderr', text);
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    child.on('message', (m) => this.onMessage(m));
    child.on('error', (e) => this.onExit(child, null, null, e));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
  }

  private request(request: Request, onReply?: (reply: Reply) => void): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const child = this.child;
      if (!child || !child.connected) {
        reject(new EngineError('engine-crashed', 'the engine process is not running'));
        return;
      }
      const p: Pending = { request, resolve, reject, onReply };
      this.pending.set(request.id, p);
      this.armTimer(p);
      child.send(request, (e) => {
        if (e) this.settle(request.id, (q) => q.reject(new EngineError('engine-crashed', `could not send to the engine process: ${e.message}`)));
      });
      if (this.earlyCancels.delete(request.id)) this.cancel(request.id);
    });
  }

  private armTimer(p: Pending): void {
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      this.settle(p.request.id, (q) =>
        q.reject(new EngineError('timeout', `the engine sent nothing for ${Math.round(this.replyTimeoutMs / 1000)} s while answering a ${p.request.type} request; it was restarted`)),
      );
      // A silent engine is stuck (e.g. in native code): end it; the next request starts a new one.
      this.child?.kill('SIGKILL');
    }, this.replyTimeoutMs);
  }

  private settle(id: number, how: (p: Pending) => void): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    how(p);
  }

  private onMessage(raw: unknown): void {
    let reply: Reply;
    try {
      reply = parseReply(raw);
    } catch (e) {
      const id = (raw as { id?: unknown } | null)?.id;
      const message = `the engine sent an invalid reply: ${(e as ProtocolError).message}`;
      if (typeof id === 'number') this.settle(id, (p) => p.reject(new EngineError('internal', message)));
      else this.emit('stderr', message + '\n');
      return;
    }
    const p = this.pending.get(reply.id);
    if (!p) return; // e.g. a late token of a request that already timed out
    switch (reply.type) {
      case 'progress':
      case 'token':
        this.armTimer(p);
        p.onReply?.(reply);
        return;
      case 'error':
        this.settle(reply.id, (q) => q.reject(new EngineError(reply.code, reply.message)));
        return;
      default:
        this.settle(reply.id, (q) => q.resolve(reply));
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, error?: Error): void {
    if (child !== this.child) return;
    this.child = null;
    if (this.disposed && !error) {
      for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(new EngineError('engine-crashed', 'the engine was shut down')));
      return;
    }
    this.crashed = true;
    const how = error ? `could not run (${error.message})` : signal ? `was killed by signal ${signal}` : `exited with code ${code}`;
    const tail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
    const message = `the engine process ${how}${tail ? `; its last output: ${tail}` : ''}. It will be restarted on the next request.`;
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(new EngineError('engine-crashed', message)));
    this.emit('crash', { code, signal, message } satisfies CrashInfo);
    if (error) child.kill('SIGKILL');
  }
}
