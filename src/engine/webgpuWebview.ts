// Starts the WebGPU engine for the extension: a webview panel that only runs dist/webview/gpu.js
// (opened beside the editor without taking focus, kept alive when hidden: VS Code has no
// invisible webviews), with the model folder readable from it, and the client that talks to it.
// Closing the panel fails pending requests with 'engine-crashed'; the next load opens a new one.
import * as vscode from 'vscode';
import { WebGpuEngineClient } from './webgpu';
import { gpuEngineHtml } from './webgpuHtml';

export interface WebGpuEngine {
  client: WebGpuEngineClient;
  panel: vscode.WebviewPanel;
}

export function openWebGpuEngine(extensionUri: vscode.Uri, modelDir: string): WebGpuEngine {
  const bundles = vscode.Uri.joinPath(extensionUri, 'dist', 'webview');
  const panel = vscode.window.createWebviewPanel(
    'repoLens.webgpuEngine',
    'Repo Lens: WebGPU engine',
    { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
    { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: [bundles, vscode.Uri.file(modelDir)] },
  );
  const webview = panel.webview;
  const client = new WebGpuEngineClient(webview, (dir) => webview.asWebviewUri(vscode.Uri.file(dir)).toString());
  webview.html = gpuEngineHtml({ cspSource: webview.cspSource, scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(bundles, 'gpu.js')).toString() });
  panel.onDidDispose(() => client.webviewGone('was closed'));
  return { client, panel };
}
