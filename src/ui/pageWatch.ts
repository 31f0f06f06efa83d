// Reloads a webview page that never said it loaded. Why: in VS Code for the Web (code-server),
// every webview registers the shared webview service worker under its own id; when two webviews
// are created at once, one registration can replace the worker while the other page is loading.
// That page's script and stylesheet then bypass the worker, fail
// (ERR_NAME_NOT_RESOLVED on *.vscode-resource.vscode-cdn.net) and the panel stays blank, with no
// error the extension can see (microsoft/vscode#326956 describes the same fall-through). Setting
// the HTML again (a fresh nonce makes it differ) loads the page under the worker that won. When
// the webview's host frame itself is stuck waiting for its worker, no HTML it is given ever loads:
// then the panel is opened anew in its place, and a new webview registers the worker afresh.
// The extension's own panels no longer race after Reload Window (revival.ts revives them one at
// a time); this is the fallback for webviews created at once by other means (other extensions).
import * as vscode from 'vscode';

/** How long a visible page may take to post 'ready' before it is loaded again. */
export const READY_TIMEOUT_MS = 10_000;
/** Reloads per page load that never got ready; then the panel is reopened (once), or the log says so. */
const MAX_RELOADS = 2;

export class PageWatch implements vscode.Disposable {
  private timer: NodeJS.Timeout | undefined;
  private reloads = 0;
  private wasVisible: boolean;
  private readonly subscription: vscode.Disposable;
  private settle!: () => void;
  /** Settles once the page first reports ready, or when it stops loading (the panel is hidden or closed). */
  readonly loaded: Promise<void>;

  /** Call after the panel's HTML is first set; `render` sets it again; `reopen`, when given, replaces
   *  the panel with a new one showing the same content (a panel that was itself reopened passes none). */
  constructor(private readonly panel: vscode.WebviewPanel, private readonly render: () => void, private readonly log: vscode.LogOutputChannel,
    private readonly name: string, private readonly reopen?: () => void) {
    this.loaded = new Promise((resolve) => (this.settle = resolve));
    this.wasVisible = panel.visible;
    // Without retainContextWhenHidden a hidden page is dropped; showing the panel loads it anew.
    this.subscription = panel.onDidChangeViewState(() => {
      if (panel.visible && !this.wasVisible) this.expectReady();
      if (!panel.visible) {
        this.clear();
        this.settle();
      }
      this.wasVisible = panel.visible;
    });
    if (panel.visible) this.expectReady();
    else this.settle();
  }

  /** The page posted 'ready': it loaded. */
  ready(): void {
    this.clear();
    this.reloads = 0;
    this.settle();
  }

  private expectReady(): void {
    this.clear();
    this.timer = setTimeout(() => this.reload(), READY_TIMEOUT_MS);
  }

  private reload(): void {
    this.timer = undefined;
    if (!this.panel.visible) return;
    if (this.reloads >= MAX_RELOADS) {
      if (this.reopen) {
        this.log.warn(`${this.name} panel: the page did not load after ${MAX_RELOADS} tries; opening the panel anew`);
        this.reopen();
        return;
      }
      this.log.error(`${this.name} panel: the page did not load after ${MAX_RELOADS} tries; close and reopen the panel, or run Developer: Reload Window`);
      return;
    }
    this.reloads++;
    this.log.warn(`${this.name} panel: the page did not report ready within ${READY_TIMEOUT_MS / 1000} s; loading it again (try ${this.reloads} of ${MAX_RELOADS})`);
    this.render();
    this.expectReady();
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  dispose(): void {
    this.clear();
    this.settle();
    this.subscription.dispose();
  }
}
