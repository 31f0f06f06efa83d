// Picks the answerer behind the panels. Today: the native engine process (src/qa over
// EngineClient) for every backend setting; the WebGPU engine (webview/gpu/) plugs in here for
// backend "webgpu", and for "auto" when no CUDA device is usable, behind the same interface.
import * as vscode from 'vscode';
import type { Answerer } from './answerer';
import { EngineAnswerer } from './engineAnswerer';

export function createAnswerer(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): Answerer {
  return new EngineAnswerer(vscode.Uri.joinPath(context.extensionUri, 'dist', 'engine.js').fsPath, log);
}
