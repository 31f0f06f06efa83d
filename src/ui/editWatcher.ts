// Feeds RecentEdits from the workspace: saves in the editor and changes on disk (another tool,
// a checkout). Each event only records a path; the prompt order is worked out at the next ask.
import * as vscode from 'vscode';
import type { RecentEdits } from './recentEdits';
import { relativeToWorkspace } from './openFile';

export function watchEdits(recent: RecentEdits): vscode.Disposable {
  const record = (uri: vscode.Uri) => {
    const rel = uri.scheme === 'file' ? relativeToWorkspace(uri) : null;
    if (rel) recent.record(rel);
  };
  const forget = (uri: vscode.Uri) => {
    const rel = uri.scheme === 'file' ? relativeToWorkspace(uri) : null;
    if (rel) recent.forget(rel);
  };
  const files = vscode.workspace.createFileSystemWatcher('**/*');
  return vscode.Disposable.from(
    files,
    files.onDidChange(record),
    files.onDidCreate(record),
    files.onDidDelete(forget),
    vscode.workspace.onDidSaveTextDocument((d) => record(d.uri)),
  );
}
