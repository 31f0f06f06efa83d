// The chat panel: questions to the repository, answers streamed from the engine, citations.
// One panel at a time (createOrShow), revived with its conversation when VS Code restarts.
import * as vscode from 'vscode';
import { parseChatState, parseFromWebview, type Action, type ChatState, type Citation, type FromWebview, type ToWebview, type Turn } from '../../webview/chat/messages';
import type { AskRequest, AskResult, CodeSelection, ProgressPhase } from './answerer';
import { citationsFromContext, citationsFromMentions, citationsFromTrace } from './citations';
import type { SelectionTrace } from '../trace/types';
import { openSettings } from './config';
import type { Ctx } from './ctx';
import { describeFailure } from './errors';
import { openAtLines } from './openFile';
import { PageWatch } from './pageWatch';
import { TextBatcher } from './textBatcher';
import { renderShell, webviewOptions } from './webviewHtml';

/** After a token goes to the page, those of the next 30 ms follow as one message (textBatcher.ts says why), of at most 8K characters. */
const TOKEN_BATCH_MS = 30;

export class ChatPanel implements vscode.Disposable {
  static readonly viewType = 'repoLens.chat';
  static current: ChatPanel | undefined;

  private readonly disposables: vscode.Disposable[] = [];
  private turns: Turn[] = [];
  private nextId = 1;
  private running: { turnId: number; abort: AbortController } | null = null;
  /** Requests by turn, for Retry. */
  private readonly requests = new Map<number, AskRequest>();
  private ready = false;
  private readonly queue: ToWebview[] = [];
  private readonly pageWatch: PageWatch;

  static createOrShow(ctx: Ctx, column = vscode.ViewColumn.Beside): ChatPanel {
    if (ChatPanel.current) {
      ChatPanel.current.panel.reveal(column, true);
      return ChatPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(ChatPanel.viewType, 'Repo Lens: Ask', { viewColumn: column, preserveFocus: false }, webviewOptions(ctx.extensionUri));
    return (ChatPanel.current = new ChatPanel(panel, ctx, { turns: [], draft: '' }));
  }

  /** Called by the serializer when VS Code restores the panel after a restart. */
  static revive(panel: vscode.WebviewPanel, ctx: Ctx, state: unknown): ChatPanel {
    ChatPanel.current?.dispose();
    panel.webview.options = webviewOptions(ctx.extensionUri);
    return (ChatPanel.current = new ChatPanel(panel, ctx, parseChatState(state)));
  }

  private constructor(private readonly panel: vscode.WebviewPanel, private readonly ctx: Ctx, restored: ChatState, reopened = false) {
    this.turns = restored.turns;
    this.nextId = Math.max(0, ...this.turns.map((t) => t.id)) + 1;
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.svg');
    const render = () => { panel.webview.html = renderShell(panel.webview, ctx.extensionUri, 'chat', 'Repo Lens: Ask'); };
    render();
    this.pageWatch = new PageWatch(panel, render, ctx.log, 'chat', reopened ? undefined : () => this.reopen());
    this.disposables.push(this.pageWatch);
    panel.onDidDispose(() => this.dispose(), null, this.disposables);
    panel.webview.onDidReceiveMessage((m: unknown) => ctx.lag.timed('chat webview message', () => this.receive(m)), null, this.disposables);
  }

  /** Settles once the page has loaded (reported ready) or stopped loading: the serializers revive
   *  the next panel only then (revival.ts). */
  get loaded(): Promise<void> {
    return this.pageWatch.loaded;
  }

  /** The same conversation in a new panel where this one was (see pageWatch.ts). */
  private reopen(): void {
    const { ctx, turns } = this;
    const panel = vscode.window.createWebviewPanel(ChatPanel.viewType, 'Repo Lens: Ask',
      { viewColumn: this.panel.viewColumn ?? vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(ctx.extensionUri));
    this.dispose();
    ChatPanel.current = new ChatPanel(panel, ctx, { turns, draft: '' }, true);
  }

  private post(m: ToWebview): void {
    if (!this.ready) {
      this.queue.push(m);
      return;
    }
    void this.panel.webview.postMessage(m);
  }

  private receive(raw: unknown): void {
    let m: FromWebview;
    try {
      m = parseFromWebview(raw);
    } catch (e) {
      this.ctx.log.warn(`chat panel: refused a message from the webview: ${e instanceof Error ? e.message : e}`);
      return;
    }
    switch (m.type) {
      case 'ready':
        // The page (re)loaded; it restored its own state. Send what happened while it was away.
        this.ready = true;
        this.pageWatch.ready();
        for (const t of this.turns) this.post({ type: 'turn', turn: t });
        for (const q of this.queue.splice(0)) this.post(q);
        return;
      case 'ask':
        void this.ask({ question: m.question, history: this.history() });
        return;
      case 'stop':
        this.stop();
        return;
      case 'open':
        void openAtLines(m.citation.file, m.citation.startLine, m.citation.endLine);
        return;
      case 'action':
        this.act(m.action, m.turnId);
        return;
      case 'invalid':
        this.ctx.log.warn(`chat webview refused a message: ${m.reason}`);
        return;
    }
  }

  private act(action: Action, turnId: number): void {
    if (action === 'openSettings') void openSettings();
    else if (action === 'showSelection') void vscode.commands.executeCommand('repoLens.showKvSelection');
    else if (action === 'retry') {
      const request = this.requests.get(turnId);
      if (request) void this.ask(request);
    }
  }

  private history(): AskRequest['history'] {
    return this.turns.filter((t) => t.status === 'done').slice(-4).map((t) => ({ question: t.question, answer: t.answer }));
  }

  stop(): void {
    this.running?.abort.abort();
  }

  explain(selection: CodeSelection): Promise<void> {
    const question = `Explain ${selection.file}:${selection.startLine}-${selection.endLine}`;
    return this.ask({ question, selection, history: [] });
  }

  /** Runs one question through the pipeline, streaming into a new turn. */
  async ask(request: AskRequest): Promise<void> {
    if (this.running) {
      void vscode.window.showInformationMessage('Repo Lens is still answering the previous question. Stop it first.');
      return;
    }
    const turn: Turn = { id: this.nextId++, question: request.question, answer: '', status: 'streaming', citations: [] };
    this.turns.push(turn);
    this.requests.set(turn.id, request);
    this.post({ type: 'turn', turn });
    const abort = new AbortController();
    this.running = { turnId: turn.id, abort };
    // Event-loop delay is attributed to the phase the answer is in: indexing (model load and
    // reading the workspace), prefill, generation (first token to the end).
    const lagPhase = this.ctx.lag.phases('indexing');
    let firstToken!: () => void;
    const prefillDone = new Promise<void>((r) => (firstToken = r));
    let progressReport: (phase: ProgressPhase, done: number, total: number) => void = () => {};
    const tokens = new TextBatcher((text) => this.post({ type: 'token', turnId: turn.id, text }), TOKEN_BATCH_MS, 8192);
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Repo Lens', cancellable: true },
      async (progress, token) => {
        token.onCancellationRequested(() => abort.abort());
        let last = 0;
        let lastPhase: ProgressPhase | null = null;
        progressReport = (phase, done, total) => {
          const pct = total > 0 ? (100 * done) / total : 0;
          // Each phase counts from 0 to its own total: restart the bar when the phase changes.
          if (phase !== lastPhase) { lastPhase = phase; last = 0; }
          progress.report({ message: `${PHASE_LABELS[phase]} (${done}/${total})`, increment: Math.max(0, pct - last) });
          last = pct;
        };
        await prefillDone;
      },
    );
    try {
      const result = await this.ctx.answerer.ask(request, {
        progress: (phase, done, total) => {
          if (phase === 'prefill') lagPhase.enter('prefill');
          progressReport(phase, done, total);
          this.post({ type: 'progress', turnId: turn.id, phase, done, total });
        },
        token: (text) => {
          firstToken();
          lagPhase.enter('generation');
          turn.answer += text;
          tokens.push(text);
        },
      }, abort.signal);
      tokens.flush();
      turn.answer = result.text;
      turn.status = result.finishReason === 'cancelled' ? 'stopped' : 'done';
      turn.citations = this.citations(result.trace, `${turn.question}\n${result.text}`, result.files);
      this.post({ type: 'end', turnId: turn.id, status: turn.status, citations: turn.citations });
      if (result.trace) this.ctx.setTrace({ title: turn.question, trace: result.trace });
    } catch (e) {
      tokens.flush();
      if (abort.signal.aborted) {
        turn.status = 'stopped';
        this.post({ type: 'end', turnId: turn.id, status: 'stopped', citations: [] });
      } else {
        const problem = describeFailure(e);
        this.ctx.log.error(`ask failed: ${problem.message}`);
        turn.status = 'error';
        turn.error = problem;
        this.post({ type: 'error', turnId: turn.id, message: problem.message, actions: problem.actions });
        void notify(problem.message, problem.actions, () => this.act('retry', turn.id));
      }
    } finally {
      lagPhase.end();
      firstToken();
      this.running = null;
    }
  }

  private citations(trace: SelectionTrace | null, text: string, files: AskResult['files']): Citation[] {
    const ranked = trace ? citationsFromTrace(trace) : [];
    if (ranked.length) return ranked;
    const mentioned = citationsFromMentions(text, files.map((f) => f.path));
    if (mentioned.length) return mentioned;
    return citationsFromContext(files);
  }

  dispose(): void {
    if (ChatPanel.current === this) ChatPanel.current = undefined;
    this.stop();
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

const PHASE_LABELS: Record<ProgressPhase, string> = { load: 'Loading the model', index: 'Reading the workspace', prefill: 'Reading into the model' };
const LABELS: Record<Action, string> = { openSettings: 'Open Settings', retry: 'Retry', showSelection: 'Show KV Selection' };

async function notify(message: string, actions: Action[], retry: () => void): Promise<void> {
  const picked = await vscode.window.showErrorMessage(`Repo Lens: ${message}`, ...actions.map((a) => LABELS[a]));
  if (picked === LABELS.openSettings) void openSettings();
  else if (picked === LABELS.retry) retry();
}
