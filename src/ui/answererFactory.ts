// Picks the answerer behind the panels: src/qa on a worker thread, over the native engine process
// (CPU, CUDA) or the WebGPU engine in a webview, chosen per load from the backend setting
// (answerWorker.ts says how).
import * as vscode from 'vscode';
import type { Answerer } from './answerer';
import { EngineAnswerer } from './engineAnswerer';
import type { EventLoopLag } from './eventLoopLag';
import { kvCacheDir } from './kvCache';

export function createAnswerer(context: vscode.ExtensionContext, log: vscode.LogOutputChannel, lag: EventLoopLag): Answerer {
  const dist = (name: string) => vscode.Uri.joinPath(context.extensionUri, 'dist', name).fsPath;
  return new EngineAnswerer(dist('answerWorker.js'), dist('engine.js'), log, lag, kvCacheDir(context));
}
