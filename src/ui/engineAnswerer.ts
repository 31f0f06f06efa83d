// The answerer over the native engine process: settings → EngineClient (loads the model once,
// reloads when model settings change) → the qa pipeline (src/qa) on the first workspace folder.
// Failures become AnswerErrors with a code the panel turns into actions.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { EngineClient, EngineError } from '../engine/client';
import type { ModelInfo } from '../engine/protocol';
import { parseConfig } from '../model/config';
import type { ModelArch } from '../model/native';
import { ask, AskError, explain, type AskOptions, type AskResult as QaResult } from '../qa';
import { AnswerError, type Answerer, type AskEvents, type AskRequest, type AskResult, type EngineStatus } from './answerer';
import { readSettings, SettingsError, type Settings } from './config';
import { denseTrace } from './denseTrace';
import { workspaceRoot } from './openFile';
import { requireTrust } from './trust';

interface Loaded {
  key: string;
  info: ModelInfo;
  arch: ModelArch;
}

export class EngineAnswerer implements Answerer {
  private client: EngineClient | null = null;
  private loaded: Loaded | null = null;
  private readonly listeners = new Set<() => void>();
  private note: string | null = null;

  constructor(private readonly enginePath: string, private readonly log: vscode.LogOutputChannel) {}

  status(): EngineStatus | null {
    const l = this.loaded;
    if (!l) return null;
    return {
      backend: l.info.backend,
      backendReason: this.note ?? l.info.backendReason,
      model: l.info.modelDir,
      contextTokens: l.info.contextTokens,
      weightBytes: l.info.weightBytes,
    };
  }

  onStatus(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  private engine(): EngineClient {
    if (this.client) return this.client;
    const client = new EngineClient({ enginePath: this.enginePath });
    client.on('stderr', (text: string) => this.log.debug(`engine: ${text.trimEnd()}`));
    client.on('crash', (c: { message: string }) => {
      this.log.error(c.message);
      this.note = 'restarting after a crash';
      this.changed();
    });
    client.on('restart', () => {
      this.log.info('engine restarted');
      this.note = null;
      this.changed();
    });
    return (this.client = client);
  }

  private async ensureLoaded(s: Settings, events: AskEvents): Promise<Loaded> {
    const modelDir = s.modelPath;
    if (!modelDir) throw new AnswerError('model-missing', 'No model is set.');
    if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) throw new AnswerError('model-missing', `The model folder ${modelDir} does not exist.`);
    const key = JSON.stringify([modelDir, s.backend, s.kvBlockSize, s.contextTokens]);
    if (this.loaded?.key === key) return this.loaded;
    const arch = readArch(modelDir);
    const info = await this.engine().load(
      { modelDir, backend: s.backend, kvBlockSize: s.kvBlockSize, contextTokens: s.contextTokens },
      (p) => events.progress('load', p.done, p.total),
    );
    this.log.info(`model loaded: ${info.modelDir} on ${info.backend} (${info.backendReason}), ${info.contextTokens} context tokens`);
    this.loaded = { key, info, arch };
    this.changed();
    return this.loaded;
  }

  async ask(request: AskRequest, events: AskEvents, signal: AbortSignal): Promise<AskResult> {
    requireTrust();
    const root = workspaceRoot();
    if (!root) throw new AnswerError('no-workspace', 'Open a folder first: Repo Lens answers questions about the open workspace folder.');
    let settings: Settings;
    try {
      settings = readSettings();
    } catch (e) {
      if (e instanceof SettingsError) throw new AnswerError('bad-request', e.message);
      throw e;
    }
    try {
      const loaded = await this.ensureLoaded(settings, events);
      const texts: string[] = [];
      const options: AskOptions = {
        client: this.engine(),
        maxNewTokens: settings.maxNewTokens,
        exclude: excludedGlobs(),
        recentFiles: recentFiles(),
        signal,
        onToken: (text) => { texts.push(text); events.token(text); },
        onProgress: (p) => {
          if (p.phase === 'prefill') events.progress('prefill', p.done, p.total ?? p.done);
          else events.progress('index', p.done, p.total ?? p.done);
        },
      };
      const r: QaResult = request.selection
        ? await explain(request.selection.text, join(root.uri.fsPath, request.selection.file), root.uri.fsPath, options)
        : await ask(withHistory(request), root.uri.fsPath, options);
      const trace = denseTrace({
        modelName: loaded.info.modelDir.split(/[\\/]/).filter(Boolean).slice(-2).join('/'),
        arch: loaded.arch,
        manifest: r.context.manifest,
        promptTokens: r.tokens.prompt,
        tokens: r.ids.map((id, i) => ({ id, text: texts[i] ?? '' })),
      }, loaded.info.kvBlockSize);
      return { text: r.answer, finishReason: r.finishReason, promptTokens: r.tokens.prompt, trace, files: r.context.files.map((f) => ({ path: f.path, lines: f.lines })) };
    } catch (e) {
      if (e instanceof AnswerError) throw e;
      if (e instanceof EngineError) {
        if (e.code === 'cancelled') return { text: '', finishReason: 'cancelled', promptTokens: 0, trace: null, files: [] };
        if (e.code === 'model-invalid' || e.code === 'model-missing' || e.code === 'backend-unavailable') { this.loaded = null; this.changed(); }
        throw new AnswerError(e.code, sentence(e.message));
      }
      if (e instanceof AskError) throw new AnswerError('prompt-too-long', sentence(e.message));
      if (signal.aborted) return { text: '', finishReason: 'cancelled', promptTokens: 0, trace: null, files: [] };
      throw e;
    }
  }

  dispose(): void {
    void this.client?.dispose();
    this.client = null;
    this.listeners.clear();
  }
}

function readArch(modelDir: string): ModelArch {
  const file = join(modelDir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new AnswerError(existsSync(file) ? 'model-invalid' : 'model-missing', `${file}: ${existsSync(file) ? `not valid JSON (${(e as Error).message})` : 'missing'}.`);
  }
  try {
    return parseConfig(json, file);
  } catch (e) {
    throw new AnswerError('model-invalid', sentence((e as Error).message));
  }
}

function sentence(s: string): string {
  const t = s.trim();
  return t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
}

/** Follow-ups carry the last turns so the model sees what "it" refers to. */
function withHistory(request: AskRequest): string {
  if (!request.history.length) return request.question;
  const earlier = request.history.map((t) => `Q: ${t.question}\nA: ${t.answer}`).join('\n\n');
  return `Earlier in this conversation:\n${earlier}\n\nFollow-up question: ${request.question}`;
}

/** VS Code's files.exclude globs that are switched on. */
function excludedGlobs(): string[] {
  const ex = vscode.workspace.getConfiguration('files').get<Record<string, unknown>>('exclude', {});
  return Object.entries(ex).filter(([, on]) => on === true).map(([glob]) => glob);
}

/** Open text editors' files, most recently active first (the context builder gives them budget first). */
function recentFiles(): string[] {
  const out: string[] = [];
  for (const e of vscode.window.visibleTextEditors) {
    const rel = vscode.workspace.asRelativePath(e.document.uri, false);
    if (e.document.uri.scheme === 'file' && rel !== e.document.uri.fsPath && !out.includes(rel)) out.push(rel);
  }
  return out;
}
