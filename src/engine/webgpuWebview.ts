// Opens the WebGPU engine's webview for the extension: a panel that only runs dist/webview/gpu.js
// (opened beside the editor without taking focus, kept alive when hidden: VS Code has no
// invisible webviews), with the model folder readable from it. The caller relays protocol
// messages between `panel.webview` and a WebGpuEngineClient (the answer worker holds it) and
// passes it `modelUri` as the folder the webview fetches the model from.
import * as vscode from 'vscode';
import { gpuEngineHtml } from './webgpuHtml';

export interface WebGpuPanel {
  panel: vscode.WebviewPanel;
  /** The model folder as the webview fetches it. */
  modelUri: string;
}

export function openWebGpuPanel(extensionUri: vscode.Uri, modelDir: string): WebGpuPanel {
  const bundles = vscode.Uri.joinPath(extensionUri, 'dist', 'webview');
  const panel = vscode.window.createWebviewPanel(
    'repoLens.webgpuEngine',
    'Repo Lens: WebGPU engine',
    { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
    { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: [bundles, vscode.Uri.file(modelDir)] },
  );
  const webview = panel.webview;
  webview.html = gpuEngineHtml({ cspSource: webview.cspSource, scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(bundles, 'gpu.js')).toString() });
  return { panel, modelUri: webview.asWebviewUri(vscode.Uri.file(modelDir)).toString() };
}
