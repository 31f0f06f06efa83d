// Revives the extension's webview panels one at a time after a window reload.
// Why: VS Code calls every panel's serializer at once and creates a panel's webview (the host
// iframe that registers the webview service worker) only once its deserializeWebviewPanel has
// resolved. In VS Code for the Web (code-server) every webview registers the same service worker
// scope under its own script URL, so two webviews created in the same moment replace each other's
// worker while loading: one host iframe then waits for a `controllerchange` that never comes and
// never loads any HTML it is given (setting the HTML again does not help), or its page's script
// and stylesheet fall through to the network (ERR_NAME_NOT_RESOLVED on *.vscode-cdn.net). Either
// way the page stays blank and never posts 'ready' (see pageWatch.ts for what is done then).
// Resolving each deserializer only after the panel revived before it has loaded its page (or
// stopped loading, or `maxWaitMs` passed) keeps the registrations apart. Pure: no vscode import.

/** The part of a vscode.WebviewPanel the queue needs. */
export interface Closable {
  onDidDispose(listener: () => void): { dispose(): void };
}

export class RevivalQueue {
  private previous: Promise<void> = Promise.resolve();

  /** `maxWaitMs`: the longest one panel's page may hold up the next panel's revival. */
  constructor(private readonly maxWaitMs: number) {}

  /** Runs `revive` (which sets up `panel` and returns a promise that settles once its page has
   *  loaded or stopped loading) after every panel queued before it; resolves once `revive` has run,
   *  which is when VS Code creates the panel's webview. A panel closed while waiting is not revived. */
  revive(panel: Closable, revive: () => Promise<void>): Promise<void> {
    let closed = false;
    const subscription = panel.onDidDispose(() => { closed = true; });
    let loaded: Promise<void> = Promise.resolve();
    const turn = this.previous.then(() => {
      subscription.dispose();
      if (!closed) loaded = revive();
    });
    this.previous = turn.then(() => settledWithin(loaded, this.maxWaitMs), () => undefined);
    return turn;
  }
}

/** Resolves when `p` settles or after `ms`, whichever comes first. */
function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => { clearTimeout(timer); resolve(); };
    p.then(done, done);
  });
}
