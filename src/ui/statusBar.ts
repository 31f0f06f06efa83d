// The status bar item: which backend and model answer, how many context tokens, memory held.
// Clicking it opens the chat panel.
import * as vscode from 'vscode';
import type { Answerer } from './answerer';
import { UNTRUSTED_MESSAGE } from './trust';

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('repoLens.status', vscode.StatusBarAlignment.Right, 100);
  private readonly subscriptions: { dispose(): void }[];

  constructor(private readonly answerer: Answerer) {
    this.item.name = 'Repo Lens';
    this.item.command = 'repoLens.ask';
    this.subscriptions = [answerer.onStatus(() => this.update()), vscode.workspace.onDidGrantWorkspaceTrust(() => this.update())];
    this.update();
    this.item.show();
  }

  update(note?: string): void {
    const s = this.answerer.status();
    if (note) {
      this.item.text = `$(search) Repo Lens: ${note}`;
      this.item.tooltip = note;
      return;
    }
    if (!vscode.workspace.isTrusted) {
      this.item.text = '$(shield) Repo Lens: Restricted Mode';
      this.item.tooltip = `${UNTRUSTED_MESSAGE}\nClick to see how.`;
      return;
    }
    if (!s) {
      this.item.text = '$(search) Repo Lens';
      const c = vscode.workspace.getConfiguration('repoLens');
      this.item.tooltip = `Backend: ${c.get('backend', 'auto')} (not started)\nModel: ${c.get('modelPath', '') || 'embedded default'}\nClick to ask the repository.`;
      return;
    }
    const model = s.model.split(/[\\/]/).filter(Boolean).slice(-2).join('/');
    const weights = s.weightBytes === null ? '' : formatBytes(s.weightBytes);
    this.item.text = `$(search) ${s.backend} · ${model} · ${s.contextTokens} tok${weights ? ` · ${weights}` : ''}`;
    this.item.tooltip = `Backend: ${s.backend} (${s.backendReason})\nModel: ${s.model}\nContext: ${s.contextTokens} tokens${weights ? `\nWeights in memory: ${weights}` : ''}\nClick to ask the repository.`;
  }

  dispose(): void {
    for (const d of this.subscriptions) d.dispose();
    this.item.dispose();
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
