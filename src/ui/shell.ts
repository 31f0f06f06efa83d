// The HTML page every Repo Lens webview starts from: one script and one stylesheet from the
// extension, under a Content-Security-Policy that allows nothing else. Pure (no vscode import),
// so the webview tests load the very same page in Chromium.
import { randomBytes } from 'node:crypto';

export interface ShellParts {
  /** webview.cspSource: the origin the webview serves the extension's files from. */
  cspSource: string;
  scriptUri: string;
  styleUri: string;
  title: string;
}

export function shellHtml(p: ShellParts): string {
  // A fresh unguessable nonce per render from the OS's CSPRNG: only <script> tags carrying it run,
  // so text that reaches the DOM (model output, file names) can never execute even if an escaping
  // bug let markup through. 'default-src none' blocks every network fetch: no remote content.
  const nonce = randomBytes(18).toString('base64');
  // style-src also allows 'unsafe-inline' because @vscode-elements (Lit) sets element styles;
  // styles cannot run code, and scripts stay nonce-only.
  const csp = [
    "default-src 'none'",
    `img-src ${p.cspSource} data:`,
    `font-src ${p.cspSource}`,
    `style-src ${p.cspSource} 'unsafe-inline'`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${escapeHtml(p.styleUri)}">
<title>${escapeHtml(p.title)}</title>
</head>
<body>
<div id="app"></div>
<script nonce="${nonce}" src="${escapeHtml(p.scriptUri)}"></script>
</body>
</html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
