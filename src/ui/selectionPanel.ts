// The KV selection panel: shows the latest answer's selection trace (which files' KV blocks were
// read, per layer and per generated token). Follows the answers: a new trace replaces the old.
import * as vscode from 'vscode';
import { parseFromWebview, parseSelectionState, type SelectionState, type ToWebview } from '../../webview/selection/messages';
import type { Ctx } from './ctx';
import { openAtLines } from './openFile';
import { PageWatch } from './pageWatch';
import { renderShell, webviewOptions } from './webviewHtml';

export class SelectionPanel implements vscode.Disposable {
  static readonly viewType = 'repoLens.kvSelection';
  static current: SelectionPanel | undefined;

  private readonly disposables: vscode.Disposable[] = [];
  private ready = false;
  private readonly pageWatch: PageWatch;

  static createOrShow(ctx: Ctx): SelectionPanel {
    const column = vscode.ViewColumn.Beside;
    if (SelectionPanel.current) {
      SelectionPanel.current.panel.reveal(column, true);
      SelectionPanel.current.sendLatest();
      return SelectionPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(SelectionPanel.viewType, 'Repo Lens: KV Selection', { viewColumn: column, preserveFocus: true }, webviewOptions(ctx.extensionUri));
    return (SelectionPanel.current = new SelectionPanel(panel, ctx, false));
  }

  static revive(panel: vscode.WebviewPanel, ctx: Ctx, state: unknown): SelectionPanel {
    SelectionPanel.current?.dispose();
    panel.webview.options = webviewOptions(ctx.extensionUri);
    // The page restores its trace from its own state; only send ours if it has none.
    const restored = parseSelectionState(state);
    return (SelectionPanel.current = new SelectionPanel(panel, ctx, restored.trace !== null, restored));
  }

  /** `restored`: the revived page's own state, kept so a reopened panel can show it (see pageWatch.ts). */
  private constructor(private readonly panel: vscode.WebviewPanel, private readonly ctx: Ctx, private pageHasTrace: boolean,
    private readonly restored: SelectionState | null = null, reopened = false) {
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.svg');
    const render = () => { panel.webview.html = renderShell(panel.webview, ctx.extensionUri, 'selection', 'Repo Lens: KV Selection'); };
    render();
    this.pageWatch = new PageWatch(panel, render, ctx.log, 'KV selection', reopened ? undefined : () => this.reopen());
    this.disposables.push(this.pageWatch);
    panel.onDidDispose(() => this.dispose(), null, this.disposables);
    panel.webview.onDidReceiveMessage((m: unknown) => this.receive(m), null, this.disposables);
    ctx.onTrace(() => { this.pageHasTrace = false; this.sendLatest(); }, null, this.disposables);
  }

  /** Settles once the page has loaded (reported ready) or stopped loading: the serializers revive
   *  the next panel only then (revival.ts). */
  get loaded(): Promise<void> {
    return this.pageWatch.loaded;
  }

  /** A new panel where this one was, with the latest trace or the one this page had restored. */
  private reopen(): void {
    const { ctx, restored } = this;
    const panel = vscode.window.createWebviewPanel(SelectionPanel.viewType, 'Repo Lens: KV Selection',
      { viewColumn: this.panel.viewColumn ?? vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(ctx.extensionUri));
    this.dispose();
    SelectionPanel.current = new SelectionPanel(panel, ctx, false, restored, true);
  }

  private post(m: ToWebview): void {
    void this.panel.webview.postMessage(m);
  }

  private sendLatest(): void {
    if (!this.ready || this.pageHasTrace) return;
    const latest = this.ctx.lastTrace ?? (this.restored?.trace ? { title: this.restored.title, trace: this.restored.trace } : undefined);
    if (latest) {
      this.post({ type: 'trace', title: latest.title, trace: latest.trace });
      this.pageHasTrace = true;
    } else {
      this.post({ type: 'empty', message: 'No answer with a selection trace yet. Run "Repo Lens: Ask the Repository"; this panel then shows which files the model read.' });
    }
  }

  private receive(raw: unknown): void {
    let m;
    try {
      m = parseFromWebview(raw);
    } catch (e) {
      this.ctx.log.warn(`selection panel: refused a message from the webview: ${e instanceof Error ? e.message : e}`);
      return;
    }
    if (m.type === 'ready') {
      this.ready = true;
      this.pageWatch.ready();
      this.sendLatest();
    } else if (m.type === 'open') {
      void openAtLines(m.file, m.startLine, m.endLine);
    } else {
      this.ctx.log.warn(`selection webview refused a message: ${m.reason}`);
    }
  }

  dispose(): void {
    if (SelectionPanel.current === this) SelectionPanel.current = undefined;
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
