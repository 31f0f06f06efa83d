// The HTML shell every Repo Lens webview gets: one script and one stylesheet from the extension,
// under a Content-Security-Policy that allows nothing else.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

/** Folders a webview may load from: the bundles and the stylesheets, nothing of the workspace. */
export function localRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')];
}

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return { enableScripts: true, localResourceRoots: localRoots(extensionUri), retainContextWhenHidden: false };
}

export function renderShell(webview: vscode.Webview, extensionUri: vscode.Uri, name: 'chat' | 'selection', title: string): string {
  // A fresh unguessable nonce per render from the OS's CSPRNG: only <script> tags carrying it run,
  // so text that reaches the DOM (model output, file names) can never execute even if an escaping
  // bug let markup through. 'default-src none' blocks every network fetch, so no remote content.
  const nonce = randomBytes(18).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', `${name}.js`));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', `${name}.css`));
  // style-src also allows 'unsafe-inline' because @vscode-elements (Lit) sets element styles;
  // styles cannot run code, and scripts stay nonce-only.
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
    `style-src ${webview.cspSource} 'unsafe-inline'`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}">
<title>${escapeHtml(title)}</title>
</head>
<body>
<div id="app"></div>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
