// Picks the answerer behind the panels. Today: the native engine process (src/qa over
// EngineClient, on a worker thread) for every backend setting; the WebGPU engine (webview/gpu/)
// plugs in here for backend "webgpu", and for "auto" when no CUDA device is usable, behind the
// same interface.
import * as vscode from 'vscode';
import type { Answerer } from './answerer';
import { EngineAnswerer } from './engineAnswerer';
import type { EventLoopLag } from './eventLoopLag';
import { kvCacheDir } from './kvCache';

export function createAnswerer(context: vscode.ExtensionContext, log: vscode.LogOutputChannel, lag: EventLoopLag): Answerer {
  const dist = (name: string) => vscode.Uri.joinPath(context.extensionUri, 'dist', name).fsPath;
  return new EngineAnswerer(dist('answerWorker.js'), dist('engine.js'), log, lag, kvCacheDir(context));
}
