// The WebGPU engine's webview on the extension host's side: the answer worker holds the
// WebGpuEngineClient and asks for the webview ('gpu-open'); this opens it and relays protocol
// messages both ways without reading them (the client validates replies, the webview requests).
// Closing the panel tells the worker, which fails what was pending and reopens it on the next load.
import * as vscode from 'vscode';
import { openWebGpuPanel } from '../engine/webgpuWebview';
import type { ToWorker } from './answerWorker';

const EXTENSION_ID = 'repo-lens.repo-lens';

export class GpuRelay {
  private open_: { panel: vscode.WebviewPanel; subscriptions: vscode.Disposable } | null = null;

  constructor(private readonly toWorker: (m: ToWorker) => void) {}

  /** Opens the webview for `modelDir` (closing one open before) and tells the worker its model URL. */
  open(modelDir: string): void {
    this.close();
    try {
      const extensionUri = vscode.extensions.getExtension(EXTENSION_ID)?.extensionUri;
      if (!extensionUri) throw new Error(`the extension ${EXTENSION_ID} is not installed`);
      const { panel, modelUri } = openWebGpuPanel(extensionUri, modelDir);
      const relay = panel.webview.onDidReceiveMessage((message: unknown) => this.toWorker({ type: 'gpu', message }));
      const closed = panel.onDidDispose(() => {
        if (this.open_?.panel !== panel) return;
        this.open_.subscriptions.dispose();
        this.open_ = null;
        this.toWorker({ type: 'gpu-gone', why: 'was closed' });
      });
      this.open_ = { panel, subscriptions: vscode.Disposable.from(relay, closed) };
      this.toWorker({ type: 'gpu-opened', modelUri });
    } catch (e) {
      this.toWorker({ type: 'gpu-open-failed', message: `the WebGPU engine webview could not be opened: ${(e as Error).message}` });
    }
  }

  toWebview(message: unknown): void {
    void this.open_?.panel.webview.postMessage(message);
  }

  close(): void {
    const o = this.open_;
    this.open_ = null;
    o?.subscriptions.dispose();
    o?.panel.dispose();
  }
}
