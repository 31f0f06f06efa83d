// The answerer over the engines: reads settings and workspace facts here (VS Code API),
// and runs the pipeline on a worker thread (answerWorker.ts), which owns the engines.
// The extension host's event loop only relays messages (also those of the WebGPU engine's
// webview, which the worker asks this side to open: gpuRelay.ts). Failures become AnswerErrors
// with a code the panel turns into actions; a worker that dies fails its questions and is replaced.
import { Worker } from 'node:worker_threads';
import * as vscode from 'vscode';
import type { ErrorCode } from '../engine/protocol';
import { DefaultModelMissingError, resolveModelDir } from '../model/defaultModel';
import { AnswerError, type Answerer, type AskEvents, type AskRequest, type AskResult, type EngineStatus } from './answerer';
import type { FromWorker, ToWorker, WorkerAsk } from './answerWorker';
import { openSettings, readSettings, SettingsError } from './config';
import { GpuRelay } from './gpuRelay';
import { watchEdits } from './editWatcher';
import type { EventLoopLag } from './eventLoopLag';
import { kvCacheOption } from './kvCache';
import { workspaceRoot } from './openFile';
import { RecentEdits } from './recentEdits';
import { requireTrust } from './trust';

interface Pending {
  events: AskEvents;
  resolve: (r: AskResult) => void;
  reject: (e: unknown) => void;
}

export class EngineAnswerer implements Answerer {
  private worker: Worker | null = null;
  private readonly gpu = new GpuRelay((m) => this.worker?.postMessage(m));
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private current: EngineStatus | null = null;
  private readonly listeners = new Set<() => void>();
  private readonly edits = new RecentEdits();
  private readonly watcher = watchEdits(this.edits);

  /** @param kvCacheDir where the repository's KV is kept on disk between engine runs (kvCache.ts). */
  constructor(private readonly workerPath: string, private readonly enginePath: string, private readonly log: vscode.LogOutputChannel, private readonly lag: EventLoopLag, private readonly kvCacheDir: string) {}

  status(): EngineStatus | null {
    return this.current;
  }

  onStatus(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.workerPath, { workerData: { enginePath: this.enginePath } });
    w.on('message', (m: FromWorker) => this.lag.timed(`worker ${m.type}`, () => this.receive(m)));
    w.on('error', (e) => this.log.error(`answer worker failed: ${e.message}`));
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      this.worker = null;
      this.gpu.close();
      this.setStatus(null);
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new AnswerError('engine-crashed', `The answer worker stopped (exit code ${code}).`));
      }
    });
    return (this.worker = w);
  }

  private setStatus(s: EngineStatus | null): void {
    this.current = s;
    for (const l of this.listeners) l();
  }

  private receive(m: FromWorker): void {
    switch (m.type) {
      case 'status': this.setStatus(m.status); return;
      case 'log': this.log[m.level](m.message); return;
      case 'progress': this.pending.get(m.id)?.events.progress(m.phase, m.done, m.total); return;
      case 'token': this.pending.get(m.id)?.events.token(m.text); return;
      case 'done': this.settle(m.id, (p) => p.resolve(m.result)); return;
      case 'failed': this.settle(m.id, (p) => p.reject(new AnswerError(m.code as ErrorCode, m.message))); return;
      case 'gpu-open': this.gpu.open(m.modelDir); return;
      case 'gpu': this.gpu.toWebview(m.message); return;
      case 'gpu-close': this.gpu.close(); return;
      case 'notice': void vscode.window.showWarningMessage(`Repo Lens: ${m.message}`, 'Open Settings').then((a) => a && openSettings()); return;
    }
  }

  private settle(id: number, how: (p: Pending) => void): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    how(p);
  }

  private send(m: ToWorker): void {
    this.thread().postMessage(m);
  }

  ask(request: AskRequest, events: AskEvents, signal: AbortSignal): Promise<AskResult> {
    requireTrust();
    const root = workspaceRoot();
    if (!root) throw new AnswerError('no-workspace', 'Open a folder first: Repo Lens answers questions about the open workspace folder.');
    let settings;
    try {
      settings = readSettings();
    } catch (e) {
      if (e instanceof SettingsError) throw new AnswerError('bad-request', e.message);
      throw e;
    }
    const id = this.nextId++;
    const message: WorkerAsk = {
      type: 'ask', id, root: root.uri.fsPath, request,
      modelDir: modelDir(settings.modelPath), backend: settings.backend, prefillPrecision: settings.prefillPrecision, kvBlockSize: settings.kvBlockSize,
      contextTokens: settings.contextTokens, maxNewTokens: settings.maxNewTokens, attention: settings.attention,
      kvAssembly: settings.kvAssembly, segmentRecompute: settings.segmentRecompute,
      exclude: excludedGlobs(), recentFiles: recentFiles(this.edits.list()), cache: kvCacheOption(this.kvCacheDir),
    };
    return new Promise<AskResult>((resolve, reject) => {
      this.pending.set(id, { events, resolve, reject });
      signal.addEventListener('abort', () => this.send({ type: 'cancel', id }), { once: true });
      this.send(message);
    });
  }

  dispose(): void {
    this.gpu.close();
    this.worker?.postMessage({ type: 'dispose' } satisfies ToWorker);
    this.worker = null;
    this.listeners.clear();
    this.watcher.dispose();
  }
}

/** The model setting, or (empty) the default model bundled in the extension (models/repo-lens-code). */
function modelDir(modelPath: string): string {
  try {
    return resolveModelDir(modelPath, vscode.extensions.getExtension('repo-lens.repo-lens')!.extensionUri.fsPath, '');
  } catch (e) {
    // The panel adds the action: set repoLens.modelPath (errors.ts).
    if (e instanceof DefaultModelMissingError) throw new AnswerError('model-missing', e.message);
    throw e;
  }
}

/** VS Code's files.exclude globs that are switched on. */
function excludedGlobs(): string[] {
  const ex = vscode.workspace.getConfiguration('files').get<Record<string, unknown>>('exclude', {});
  return Object.entries(ex).filter(([, on]) => on === true).map(([glob]) => glob);
}

/**
 * Files edited in this session (most recent first, so they end the prompt and an edit re-prefills
 * only from there), then those of the visible editors (the context builder gives them budget first).
 */
function recentFiles(edited: string[]): string[] {
  const out = [...edited];
  for (const e of vscode.window.visibleTextEditors) {
    if (e.document.uri.scheme !== 'file') continue;
    const rel = vscode.workspace.asRelativePath(e.document.uri, false);
    if (rel !== e.document.uri.fsPath && !out.includes(rel)) out.push(rel);
  }
  return out;
}
