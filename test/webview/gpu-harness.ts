// Runs the WebGPU engine's browser-side test page (gpu-page.ts) in headless Debian Chromium with
// WebGPU on SwiftShader. The page and the model folders are served from 127.0.0.1 (a secure
// context, which WebGPU requires): /page.js, /models/<name>/<file>, /reference/<file>, files a
// test makes up (broken models) under /extra/<folder>/<file>, and the engine webview's real page
// (/engine, with its CSP) and script (/gpu.js, webview/gpu/main.ts).

import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize, resolve } from 'node:path';
import * as esbuild from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { gpuEngineHtml } from '../../src/engine/webgpuHtml';

const repo = resolve(import.meta.dirname, '../..');
export const CHROMIUM = '/usr/bin/chromium';

/** Model folders the page may load, by the name used in its URLs. */
export const MODEL_DIRS: Record<string, string> = {
  stories260K: resolve(repo, '../shared/models/stories260K/hf'),
  llama3: join(repo, 'test/fixtures/models/llama3'),
  qwen2: join(repo, 'test/fixtures/models/qwen2'),
  mistral: join(repo, 'test/fixtures/models/mistral'),
};
const REFERENCE_DIR = join(repo, 'test/fixtures/reference');

export interface GpuPage {
  page: Page;
  origin: string;
  close(): Promise<void>;
}

async function bundle(entry: string): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [join(repo, entry)],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    loader: { '.wgsl': 'text' },
    logLevel: 'warning',
  });
  return result.outputFiles[0].text;
}

function serve(script: string, engineScript: string, extra: Record<string, string | Uint8Array>): Promise<Server> {
  const html = '<!doctype html><meta charset="utf-8"><title>gpu test</title><script src="/page.js"></script>';
  const server = createServer((req, res) => {
    const origin = `http://${req.headers.host}`;
    // The engine webview's own page and script, as the extension serves them (CSP included).
    if (req.url === '/engine') return send(res, 200, 'text/html', gpuEngineHtml({ cspSource: origin, scriptUri: `${origin}/gpu.js` }));
    if (req.url === '/gpu.js') return send(res, 200, 'text/javascript', engineScript);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (url.pathname === '/') return send(res, 200, 'text/html', html);
    if (url.pathname === '/page.js') return send(res, 200, 'text/javascript', script);
    if (parts[0] === 'extra') {
      const body = extra[parts.slice(1).join('/')];
      return body === undefined ? send(res, 404, 'text/plain', 'not found') : send(res, 200, 'application/octet-stream', body);
    }
    let file: string | undefined;
    if (parts[0] === 'models' && parts.length === 3 && MODEL_DIRS[parts[1]]) file = join(MODEL_DIRS[parts[1]], parts[2]);
    if (parts[0] === 'reference' && parts.length === 2) file = join(REFERENCE_DIR, parts[1]);
    if (!file || normalize(file) !== file || !existsSync(file) || !statSync(file).isFile()) return send(res, 404, 'text/plain', 'not found');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': statSync(file).size });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

function send(res: import('node:http').ServerResponse, status: number, type: string, body: string | Uint8Array): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Opens the test page with WebGPU on; `gpu` false leaves the flag off (no adapter). `extraFiles`
 * ("folder/file" → contents) are served under /extra/. `script` replaces the page's script (e.g. a
 * benchmark's), which sets window[`global`] once ready.
 */
export async function openGpuPage(options: { gpu?: boolean; extraFiles?: Record<string, string | Uint8Array>; script?: string; global?: string } = {}): Promise<GpuPage> {
  const server = await serve(await bundle(options.script ?? 'test/webview/gpu-page.ts'), await bundle('webview/gpu/main.ts'), options.extraFiles ?? {});
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const home = mkdtempSync(join(tmpdir(), 'repo-lens-chromium-'));
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      env: { ...process.env, HOME: home },
      args: [
        '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--no-first-run', '--disable-quic',
        ...(options.gpu === false ? [] : ['--enable-unsafe-webgpu']),
      ],
    });
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(origin + '/');
    await page.waitForFunction((name) => name in window, options.global ?? 'gpuTest');
    const opened = browser;
    return {
      page,
      origin,
      close: async () => {
        await opened.close();
        server.close();
        rmSync(home, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await browser?.close();
    server.close();
    rmSync(home, { recursive: true, force: true });
    throw e;
  }
}
