// The KV selection webview in Chromium: files grouped by folder × layers, the scrubber and the
// δ̂ strip react, clicking a file asks to open it at the selected lines, bad traces are refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ToWebview } from '../../webview/selection/messages';
import { Chromium, openWebview, type WebviewPage } from './harness';
import { sampleTrace } from './traceFixture';

let chrome: Chromium;
before(async () => { chrome = await Chromium.launch(); });
after(async () => { await chrome.close(); });

async function cellFreqs(w: WebviewPage, file: string): Promise<string[]> {
  return w.page.locator(`#grid .row[data-file="${file}"] .cell`).evaluateAll((cells) => cells.map((c) => c.getAttribute('data-freq') ?? ''));
}

async function withTrace(): Promise<WebviewPage> {
  const w = await openWebview(chrome, 'selection');
  await w.send({ type: 'trace', title: 'Where is math?', trace: sampleTrace() } satisfies ToWebview);
  await w.page.locator('#grid .row').first().waitFor();
  return w;
}

test('lists the files grouped by folder, one column per layer', async () => {
  const w = await withTrace();
  const rows = await w.page.locator('#grid .row').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-file')));
  assert.deepEqual(rows, ['README.md', 'lib/index.js', 'src/main.ts', 'src/util/math.ts']);
  const folders = await w.page.locator('#grid .folder').allTextContents();
  assert.deepEqual(folders, ['./', 'lib/', 'src/', 'src/util/']);
  assert.equal(await w.page.locator('#grid .row[data-file="README.md"] .cell').count(), 3);
  assert.equal(await w.page.locator('#steps .bar').count(), 4);
  assert.match((await w.page.locator('.summary').textContent()) ?? '', /prhs · 4 tokens · 26 prompt tokens in 7 blocks of 4/);
  assert.deepEqual(await cellFreqs(w, 'src/util/math.ts'), ['0.5000', '0.5000', '0.5000'], 'whole answer: the mean over steps');
  assert.deepEqual(await w.violations(), []);
  await w.page.close();
});

test('the scrubber selects a token: label, highlighted token, and per-step colours change', async () => {
  const w = await withTrace();
  const scrubber = w.page.locator('#scrubber');
  await scrubber.fill('1');
  await w.page.locator('.token.current').waitFor();
  assert.equal(await w.page.locator('.token.current').textContent(), ' answer');
  assert.match((await w.page.locator('#step-label').textContent()) ?? '', /token 2\/4 " answer" · δ̂ — · 0 scored, 6 reused/);
  assert.deepEqual(await cellFreqs(w, 'src/util/math.ts'), ['1.0000', '1.0000', '1.0000']);
  assert.equal(await w.page.locator('#steps .bar.current').getAttribute('data-step'), '1');

  await scrubber.fill('0');
  await w.page.locator('#steps .bar.current[data-step="0"]').waitFor();
  assert.deepEqual(await cellFreqs(w, 'src/util/math.ts'), ['0.0000', '0.0000', '0.0000']);
  assert.match((await w.page.locator('#step-label').textContent()) ?? '', /δ̂ 0\.010 · 6 scored, 0 reused/);

  // Clicking a step in the δ̂ strip moves the scrubber too.
  await w.page.locator('#steps .bar[data-step="3"]').dispatchEvent('click');
  await w.page.locator('.token.current').filter({ hasText: 'here' }).waitFor();
  assert.equal(await scrubber.inputValue(), '3');
  // The scrubbed step survives a reload through setState.
  assert.equal(((await w.savedState()) as { step: number }).step, 3);
  await w.page.close();
});

test('clicking a file asks to open it at the lines selected at that token', async () => {
  const w = await withTrace();
  await w.page.locator('#scrubber').fill('1');
  await w.page.locator('#grid .row[data-file="src/util/math.ts"] .file').click();
  await w.waitForPosted('open');
  assert.deepEqual((await w.posted()).find((m) => m.type === 'open'), { type: 'open', file: 'src/util/math.ts', startLine: 1, endLine: 8 });
  await w.page.close();
});

test('a trace that fails validation is refused and reported; the empty message shows', async () => {
  const w = await openWebview(chrome, 'selection');
  const bad = sampleTrace();
  (bad as { version: number }).version = 2;
  await w.send({ type: 'trace', title: 'x', trace: bad });
  const escaping = sampleTrace();
  escaping.manifest[3].spans[0].source = '../outside.ts';
  await w.send({ type: 'trace', title: 'x', trace: escaping });
  await w.waitForPosted('invalid', 2);
  const reasons = (await w.posted()).filter((m) => m.type === 'invalid').map((m) => String(m.reason));
  assert.match(reasons[0], /version must be 1/);
  assert.match(reasons[1], /workspace-relative path/);
  assert.equal(await w.page.locator('#grid .row').count(), 0);
  await w.send({ type: 'empty', message: 'No answer yet.' } satisfies ToWebview);
  await w.page.locator('.message', { hasText: 'No answer yet.' }).waitFor();
  await w.page.close();
});

test('a saved trace is drawn again when the page reloads', async () => {
  const w = await withTrace();
  await w.page.locator('#scrubber').fill('2');
  await w.page.locator('#steps .bar.current[data-step="2"]').waitFor();
  const saved = await w.savedState();
  await w.page.close();
  const again = await openWebview(chrome, 'selection', saved);
  await again.page.locator('#grid .row').first().waitFor();
  assert.equal(await again.page.locator('#scrubber').inputValue(), '2');
  assert.equal(await again.page.locator('.token.current').textContent(), ' is');
  await again.page.close();
});
