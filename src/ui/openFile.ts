// Opens a workspace file at a line range (citations and the selection panel). Paths come from
// webviews, so they are resolved inside a workspace folder and anything escaping it is refused.
import * as path from 'node:path';
import * as vscode from 'vscode';

export function resolveInWorkspace(relative: string): vscode.Uri | null {
  for (const folder of vscode.workspace.workspaceFolders ?? []) {
    const root = folder.uri.fsPath;
    const full = path.resolve(root, relative);
    if (full === root || !full.startsWith(root + path.sep)) continue;
    return vscode.Uri.file(full);
  }
  return null;
}

export async function openAtLines(relative: string, startLine: number, endLine: number): Promise<void> {
  const uri = resolveInWorkspace(relative);
  if (!uri) {
    void vscode.window.showWarningMessage(`Repo Lens: ${relative} is not inside an open workspace folder.`);
    return;
  }
  try {
    const doc = await vscode.workspace.openTextDocument(uri);
    const last = Math.max(0, doc.lineCount - 1);
    const start = Math.min(last, Math.max(0, startLine - 1));
    const end = Math.min(last, Math.max(start, endLine - 1));
    const range = new vscode.Range(start, 0, end, doc.lineAt(end).text.length);
    const editor = await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.One, selection: range, preserveFocus: false });
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  } catch (e) {
    void vscode.window.showErrorMessage(`Repo Lens: cannot open ${relative}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The first workspace folder, where the repository is read from. */
export function workspaceRoot(): vscode.WorkspaceFolder | undefined {
  return vscode.workspace.workspaceFolders?.[0];
}

export function relativeToWorkspace(uri: vscode.Uri): string | null {
  const folder = vscode.workspace.getWorkspaceFolder(uri);
  if (!folder) return null;
  return path.relative(folder.uri.fsPath, uri.fsPath).split(path.sep).join('/');
}
