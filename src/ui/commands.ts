// The commands users run (palette, editor context menu, status bar).
import * as vscode from 'vscode';
import { ChatPanel } from './chatPanel';
import type { Ctx } from './ctx';
import { relativeToWorkspace } from './openFile';
import { SelectionPanel } from './selectionPanel';
import { explainRestrictedMode } from './trust';

export function ask(ctx: Ctx): () => Promise<void> {
  return async () => {
    if (!vscode.workspace.isTrusted) return explainRestrictedMode();
    ChatPanel.createOrShow(ctx);
  };
}

export function explainSelection(ctx: Ctx): () => Promise<void> {
  return async () => {
    if (!vscode.workspace.isTrusted) return explainRestrictedMode();
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.selection.isEmpty) {
      void vscode.window.showInformationMessage('Repo Lens: select some code in an editor first, then run Explain Selection.');
      return;
    }
    const file = relativeToWorkspace(editor.document.uri);
    if (!file) {
      void vscode.window.showInformationMessage('Repo Lens: Explain Selection works on files inside the open workspace folder.');
      return;
    }
    const sel = editor.selection;
    const endLine = sel.end.character === 0 && sel.end.line > sel.start.line ? sel.end.line : sel.end.line + 1;
    const panel = ChatPanel.createOrShow(ctx, vscode.ViewColumn.Beside);
    await panel.explain({ file, startLine: sel.start.line + 1, endLine, text: editor.document.getText(sel) });
  };
}

export function showKvSelection(ctx: Ctx): () => Promise<void> {
  return async () => {
    if (!vscode.workspace.isTrusted) return explainRestrictedMode();
    SelectionPanel.createOrShow(ctx);
  };
}

/** Writes the event-loop delay report to the log and shows it (how responsive the editor stayed). */
export function showDiagnostics(ctx: Ctx): () => void {
  return () => {
    const r = ctx.lag.report();
    ctx.lag.flush();
    ctx.log.info(`event-loop delay (ms a 10 ms timer fired late): ${JSON.stringify(r)}`);
    const status = ctx.answerer.status();
    if (status) ctx.log.info(`engine: ${JSON.stringify(status)}`);
    ctx.log.show(true);
  };
}
