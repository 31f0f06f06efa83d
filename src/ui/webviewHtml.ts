// Options and HTML for the extension's webview panels.
import * as vscode from 'vscode';
import { shellHtml } from './shell';

/** Folders a webview may load from: the bundles and the stylesheets, nothing of the workspace. */
export function localRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')];
}

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return { enableScripts: true, localResourceRoots: localRoots(extensionUri), retainContextWhenHidden: false };
}

export function renderShell(webview: vscode.Webview, extensionUri: vscode.Uri, name: 'chat' | 'selection', title: string): string {
  return shellHtml({
    cspSource: webview.cspSource,
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', `${name}.js`)).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', `${name}.css`)).toString(),
    title,
  });
}
