// Loads a webview page (the real bundle, stylesheet and CSP shell) in headless Debian Chromium,
// with acquireVsCodeApi stubbed: messages the page posts and the state it saves are recorded,
// and tests send it messages as the extension would.
import * as esbuild from 'esbuild';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { shellHtml } from '../../src/ui/shell';

const ORIGIN = 'https://webview.test';
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

const bundles = new Map<string, string>();

async function bundle(name: string): Promise<string> {
  let code = bundles.get(name);
  if (!code) {
    const out = await esbuild.build({ entryPoints: [`webview/${name}/main.ts`], bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022' });
    code = out.outputFiles[0].text;
    bundles.set(name, code);
  }
  return code;
}

export class Chromium {
  private constructor(readonly browser: Browser, private readonly home: string) {}

  static async launch(): Promise<Chromium> {
    const home = mkdtempSync(join(tmpdir(), 'repo-lens-chromium-'));
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Playwright gives each launch a fresh temporary profile (its own --user-data-dir).
      args: CHROMIUM_ARGS,
      env: { ...process.env, HOME: home },
    });
    return new Chromium(browser, home);
  }

  async close(): Promise<void> {
    await this.browser.close();
    rmSync(this.home, { recursive: true, force: true });
  }
}

export interface WebviewPage {
  page: Page;
  /** Messages the page posted to the extension, in order. */
  posted(): Promise<{ type: string; [k: string]: unknown }[]>;
  /** The last state the page saved with setState. */
  savedState(): Promise<unknown>;
  /** Delivers a message as the extension's webview.postMessage does. */
  send(message: unknown): Promise<void>;
  /** CSP violations reported by the page (must stay empty). */
  violations(): Promise<string[]>;
  /** Waits until the page has posted a message of this type (count: the n-th one). */
  waitForPosted(type: string, count?: number): Promise<void>;
}

export async function openWebview(chrome: Chromium, name: 'chat' | 'selection', initialState?: unknown): Promise<WebviewPage> {
  const context = await chrome.browser.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const code = await bundle(name);
  const css = readFileSync(`media/${name}.css`, 'utf8');
  await page.route(`${ORIGIN}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/index.html') {
      return route.fulfill({ contentType: 'text/html', body: shellHtml({ cspSource: ORIGIN, scriptUri: `${ORIGIN}/${name}.js`, styleUri: `${ORIGIN}/${name}.css`, title: name }) });
    }
    if (path === `/${name}.js`) return route.fulfill({ contentType: 'text/javascript', body: code });
    if (path === `/${name}.css`) return route.fulfill({ contentType: 'text/css', body: css });
    return route.fulfill({ status: 404, body: '' });
  });
  // A string, not a function: tsx's name-keeping helper (__name) does not exist inside the page.
  await page.addInitScript(`
    window.__posted = [];
    window.__state = ${JSON.stringify(initialState ?? null)};
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
    window.acquireVsCodeApi = () => ({
      postMessage: (m) => window.__posted.push(JSON.parse(JSON.stringify(m))),
      getState: () => window.__state,
      setState: (s) => { window.__state = JSON.parse(JSON.stringify(s)); },
    });`);
  page.setDefaultTimeout(10_000);
  await page.goto(`${ORIGIN}/index.html`);
  const wp: WebviewPage = {
    page,
    posted: () => page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted),
    savedState: () => page.evaluate(() => (window as unknown as { __state: unknown }).__state),
    send: (message) => page.evaluate((m) => window.postMessage(m, '*'), message),
    violations: () => page.evaluate(() => (window as unknown as { __violations: string[] }).__violations),
    waitForPosted: async (type, count = 1) => {
      await page.waitForFunction(([t, n]) => (window as unknown as { __posted: { type: string }[] }).__posted.filter((m) => m.type === t).length >= (n as number), [type, count] as const);
    },
  };
  try {
    await wp.waitForPosted('ready');
  } catch (e) {
    throw new Error(`the ${name} page never became ready: ${errors.join('; ') || (e as Error).message}`);
  }
  return wp;
}
