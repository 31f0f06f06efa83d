// Starts code-server with the packaged extension installed on a copy of the fixture workspace,
// and drives its workbench with Playwright in headless Debian Chromium (recipes/README.md).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Frame, type Locator, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../webview/harness';

export const ARTIFACTS = resolve('.test-artifacts/e2e');
const CODE_SERVER = resolve('.test-artifacts/code-server/node_modules/.bin/code-server');
export const MODEL_DIR = resolve('..', 'shared', 'models', 'stories260K', 'hf');

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

/** The VSIX to install: REPO_LENS_VSIX, else packaged now from the built tree. */
function vsix(): string {
  if (process.env.REPO_LENS_VSIX) return resolve(process.env.REPO_LENS_VSIX);
  execFileSync(process.execPath, ['scripts/package.mjs'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const found = readdirSync('.').filter((f) => f.endsWith('-linux-x64.vsix'));
  if (!found.length) throw new Error('npm run package produced no linux-x64 VSIX');
  return resolve(found[0]);
}

export interface Session {
  page: Page;
  workspace: string;
  /** The extension host writes its event-loop delay report here (REPO_LENS_LAG_FILE). */
  lagFile: string;
  /** Writes these settings over the current ones (User and Machine scopes). */
  setSettings(patch: Record<string, unknown>): void;
  /** Pids of the engine processes the installed extension runs. */
  enginePids(): number[];
  /** What the extension's Output channel (its log file) holds so far ('' before it is written). */
  extensionLog(): string;
  close(): Promise<void>;
}

export interface SessionOptions {
  /** Fills the workspace folder; default: a copy of test/e2e/workspace. */
  fillWorkspace?: (dir: string) => void;
  /** Workspace trust on (the folder opens in Restricted Mode); default off. */
  workspaceTrust?: boolean;
  /** Prefix of this session's logs in the artifacts folder (one per test file). */
  name?: string;
}

export async function startSession(settings: Record<string, unknown>, options: SessionOptions = {}): Promise<Session> {
  if (!existsSync(CODE_SERVER)) throw new Error(`${CODE_SERVER} is missing: run test/e2e/install-code-server.sh`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const artifact = (file: string) => join(ARTIFACTS, options.name ? `${options.name}-${file}` : file);
  const root = mkdtempSync(join(tmpdir(), 'repo-lens-e2e-'));
  const dirs = { home: join(root, 'home'), data: join(root, 'data'), ext: join(root, 'extensions'), workspace: join(root, 'workspace') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  if (options.fillWorkspace) options.fillWorkspace(dirs.workspace);
  else cpSync('test/e2e/workspace', dirs.workspace, { recursive: true });
  const base = {
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'security.workspace.trust.enabled': options.workspaceTrust ?? false,
    // Untrusted folders open in Restricted Mode without asking (the test then sees what is disabled).
    'security.workspace.trust.startupPrompt': 'never',
    'telemetry.telemetryLevel': 'off',
    'extensions.autoCheckUpdates': false,
    'window.restoreWindows': 'none',
    ...settings,
  };
  // Machine-scoped settings (repoLens.modelPath) are read from Machine/ in a remote window.
  for (const scope of ['User', 'Machine']) {
    mkdirSync(join(dirs.data, scope), { recursive: true });
    writeFileSync(join(dirs.data, scope, 'settings.json'), JSON.stringify(base, null, 2));
  }
  const env = {
    ...process.env,
    HOME: dirs.home,
    XDG_CONFIG_HOME: join(dirs.home, '.config'),
    XDG_DATA_HOME: join(dirs.home, '.local', 'share'),
    REPO_LENS_LAG_FILE: join(root, 'event-loop-lag.json'),
  };
  const config = join(root, 'config.yaml');
  writeFileSync(config, 'auth: none\ncert: false\n');
  const common = ['--config', config, '--user-data-dir', dirs.data, '--extensions-dir', dirs.ext];
  execFileSync(CODE_SERVER, [...common, '--install-extension', vsix()], { env, stdio: ['ignore', 'ignore', 'inherit'] });

  const port = await freePort();
  const server: ChildProcess = spawn(CODE_SERVER, [
    ...common, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check',
    ...(options.workspaceTrust ? [] : ['--disable-workspace-trust']), dirs.workspace,
  ], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let serverLog = '';
  server.stdout!.on('data', (d) => (serverLog += d));
  server.stderr!.on('data', (d) => (serverLog += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (i > 120 || server.exitCode !== null) throw new Error(`code-server did not start: ${serverLog.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }

  // WebGPU (SwiftShader) for the WebGPU engine's webview.
  const args = [...CHROMIUM_ARGS, '--enable-unsafe-webgpu'];
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args, env: { ...process.env, HOME: dirs.home } });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(60_000);
  // The workbench's and the webviews' console, for diagnosing a failed run.
  let consoleLines = '';
  page.on('console', (m) => (consoleLines += `${new Date().toISOString()} [${m.type()}] ${m.location().url.slice(0, 120)}: ${m.text()}\n`));
  page.on('pageerror', (e) => (consoleLines += `${new Date().toISOString()} [pageerror] ${e.message}\n`));
  await page.goto(`${url}/?folder=${encodeURIComponent(dirs.workspace)}`);
  await page.locator('.monaco-workbench').waitFor();
  await page.locator('.explorer-folders-view, .monaco-list').first().waitFor();
  // The extension activates on startup: its status bar item says it is up.
  await page.locator('.statusbar-item', { hasText: 'Repo Lens' }).first().waitFor();

  return {
    page,
    workspace: dirs.workspace,
    lagFile: env.REPO_LENS_LAG_FILE,
    setSettings: (patch) => {
      for (const scope of ['User', 'Machine']) {
        const f = join(dirs.data, scope, 'settings.json');
        writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), ...patch }, null, 2));
      }
    },
    enginePids: () => execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n')
      .filter((l) => l.includes(dirs.ext) && l.includes('engine.js')).map((l) => Number.parseInt(l.trim(), 10)),
    extensionLog: () => {
      const found = execFileSync('find', [join(dirs.data, 'logs'), '-name', '*Repo Lens.log'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
      return found.map((f) => readFileSync(f, 'utf8')).join('\n');
    },
    close: async () => {
      await browser.close();
      // code-server, its extension host and the engine process share this process group.
      const group = -server.pid!;
      const exited = new Promise((r) => server.once('exit', r));
      process.kill(group, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      try { process.kill(group, 'SIGKILL'); } catch { /* already gone */ }
      writeFileSync(artifact('code-server.log'), serverLog);
      writeFileSync(artifact('browser-console.log'), consoleLines);
      // The extension's own log (its Output channel), for diagnosing a failed run.
      try {
        const find = (name: string) => execFileSync('find', [join(dirs.data, 'logs'), '-name', name], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
        // One log per window: a reload starts a new one.
        writeFileSync(artifact('repo-lens.log'), find('*Repo Lens.log').map((f) => readFileSync(f, 'utf8')).join('\n'));
        writeFileSync(artifact('exthost.log'), find('remoteexthost.log').map((f) => readFileSync(f, 'utf8')).join('\n'));
      } catch {
        // no log written
      }
      rmSync(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}

/** Runs a command from the command palette by its title, as a user would. */
export async function runCommand(page: Page, title: string): Promise<void> {
  // The palette lists the commands known when it opens: reopen it until the command is there.
  for (let attempt = 0; ; attempt++) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor();
    await input.fill(`>${title}`);
    const item = page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
    try {
      await item.waitFor({ timeout: 3000 });
    } catch (e) {
      await page.keyboard.press('Escape');
      if (attempt >= 10) throw e;
      continue;
    }
    await input.press('Enter');
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden' });
    return;
  }
}

/** The content frame of a webview: the one (nested in VS Code's host iframe) holding `selector`. */
export async function webviewFrame(page: Page, selector: string, timeoutMs = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const f of page.frames()) {
      try {
        if (await f.$(selector)) return f;
      } catch {
        // frame detached while looking
      }
    }
    if (Date.now() > deadline) {
      await screenshot(page, `failed-${selector.replace(/[^a-z]+/gi, '-')}`);
      throw new Error(`no webview frame shows ${selector}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** Fails unless a chat turn ended `done`, with its error text when there is one. (The text is read
 * only then: a locator that matches nothing waits out Playwright's whole timeout.) */
export async function assertAnswered(turn: Locator, what = 'the answer'): Promise<void> {
  const status = await turn.getAttribute('data-status');
  if (status === 'done') return;
  const error = await turn.locator('.error').textContent({ timeout: 1000 }).catch(() => '');
  throw new Error(`${what} ended ${status}: ${error}`);
}
