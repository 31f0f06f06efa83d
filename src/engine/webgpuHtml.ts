// The page of the hidden WebGPU engine webview: one script (dist/webview/gpu.js), no UI. Its CSP
// allows that script (by nonce) and fetches from the webview's own resource origin only — the
// model folder, which the host lists in localResourceRoots. Pure (no vscode import).
import { randomBytes } from 'node:crypto';

export interface GpuEngineHtmlParts {
  /** webview.cspSource: the origin the webview serves local resources from. */
  cspSource: string;
  /** webview.asWebviewUri of dist/webview/gpu.js. */
  scriptUri: string;
}

export function gpuEngineHtml(p: GpuEngineHtmlParts): string {
  const nonce = randomBytes(18).toString('base64');
  const csp = ["default-src 'none'", `connect-src ${p.cspSource}`, `script-src 'nonce-${nonce}'`].join('; ');
  const attr = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(csp)}">
<title>Repo Lens WebGPU engine</title>
</head>
<body>
<script nonce="${nonce}" src="${attr(p.scriptUri)}"></script>
</body>
</html>`;
}
