// Workspace trust: reading a workspace into a local model and starting the native engine run
// code the workspace cannot influence, but the model path and engine settings can come from
// workspace settings, so both wait until the user trusts the folder.
import * as vscode from 'vscode';
import { AnswerError } from './answerer';

export const UNTRUSTED_MESSAGE =
  'This workspace is not trusted, so Repo Lens does not read it into the model or start its engine ' +
  '(Ask the Repository, Explain Selection and the KV selection panel are disabled). Trust the folder to use them.';

/** Throws an AnswerError that explains what is disabled when the workspace is not trusted. */
export function requireTrust(): void {
  if (!vscode.workspace.isTrusted) throw new AnswerError('untrusted', UNTRUSTED_MESSAGE);
}

/** Says once, with a way to trust the folder, why commands are disabled. */
export async function explainRestrictedMode(): Promise<void> {
  const manage = 'Manage Workspace Trust';
  const picked = await vscode.window.showWarningMessage(`Repo Lens: ${UNTRUSTED_MESSAGE}`, manage);
  if (picked === manage) void vscode.commands.executeCommand('workbench.trust.manage');
}
