// Entry point: wires commands, panels and the status bar to one Ctx. Wiring only; behaviour
// lives in src/ui/ (panels, commands) and src/qa/ (the pipeline). The native addon is never
// loaded here: the engine runs in its own process.
import * as vscode from 'vscode';
import { createAnswerer } from './ui/answererFactory';
import { ChatPanel } from './ui/chatPanel';
import * as commands from './ui/commands';
import { Ctx } from './ui/ctx';
import { EventLoopLag } from './ui/eventLoopLag';
import { clearKvCache } from './ui/kvCache';
import { READY_TIMEOUT_MS } from './ui/pageWatch';
import { RevivalQueue } from './ui/revival';
import { SelectionPanel } from './ui/selectionPanel';
import { StatusBar } from './ui/statusBar';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Repo Lens', { log: true });
  const lag = new EventLoopLag();
  const answerer = createAnswerer(context, log, lag);
  const c = new Ctx(context, log, answerer, lag);
  context.subscriptions.push(c, log, { dispose: () => { answerer.dispose(); lag.dispose(); } });

  c.own(new StatusBar(answerer));
  c.own(vscode.commands.registerCommand('repoLens.ask', commands.ask(c)));
  c.own(vscode.commands.registerCommand('repoLens.explainSelection', commands.explainSelection(c)));
  c.own(vscode.commands.registerCommand('repoLens.showKvSelection', commands.showKvSelection(c)));
  c.own(vscode.commands.registerCommand('repoLens.showDiagnostics', commands.showDiagnostics(c)));
  c.own(vscode.commands.registerCommand('repoLens.clearKvCache', clearKvCache(context, log)));
  // After a reload VS Code revives both panels at once: one at a time, so that their webviews do not
  // race for the webview service worker (revival.ts).
  const revival = new RevivalQueue(READY_TIMEOUT_MS);
  c.own(vscode.window.registerWebviewPanelSerializer(ChatPanel.viewType, {
    deserializeWebviewPanel: (panel, state) => revival.revive(panel, () => ChatPanel.revive(panel, c, state).loaded),
  }));
  c.own(vscode.window.registerWebviewPanelSerializer(SelectionPanel.viewType, {
    deserializeWebviewPanel: (panel, state) => revival.revive(panel, () => SelectionPanel.revive(panel, c, state).loaded),
  }));
  c.own({ dispose: () => { ChatPanel.current?.dispose(); SelectionPanel.current?.dispose(); } });
  c.own(vscode.workspace.onDidGrantWorkspaceTrust(() => log.info('workspace trusted: Repo Lens commands enabled')));
  log.info(`Repo Lens activated (extension host pid ${process.pid}, Node ${process.version})`);
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
