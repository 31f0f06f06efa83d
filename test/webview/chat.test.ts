// The chat webview in Chromium: streamed Markdown, escaping, validation both ways, ask/stop,
// citations, error actions, and state restored after a reload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ToWebview, Turn } from '../../webview/chat/messages';
import { Chromium, openWebview } from './harness';

let chrome: Chromium;
before(async () => { chrome = await Chromium.launch(); });
after(async () => { await chrome.close(); });

const turn = (id: number, over: Partial<Turn> = {}): Turn => ({ id, question: `question ${id}`, answer: '', status: 'streaming', citations: [], ...over });

test('streams tokens into rendered Markdown and ends with citations', async () => {
  const w = await openWebview(chrome, 'chat');
  await w.send({ type: 'turn', turn: turn(1) } satisfies ToWebview);
  for (const text of ['The **main** entry', ' is `run()`.\n\n', '```ts\nrun();\n```\n', '- one\n- two']) {
    await w.send({ type: 'token', turnId: 1, text } satisfies ToWebview);
  }
  const answer = w.page.locator('.turn[data-turn-id="1"] .answer');
  await answer.locator('li').nth(1).waitFor();
  assert.equal(await answer.locator('strong').textContent(), 'main');
  assert.equal(await answer.locator('p code').textContent(), 'run()');
  assert.equal(await answer.locator('pre code').textContent(), 'run();');
  assert.equal(await answer.locator('pre code').getAttribute('data-lang'), 'ts');
  assert.equal(await w.page.locator('#stop').evaluate((b) => (b as HTMLElement & { disabled: boolean }).disabled), false, 'Stop is enabled while streaming');

  await w.send({ type: 'end', turnId: 1, status: 'done', citations: [{ file: 'src/app.ts', startLine: 3, endLine: 9, weight: 0.42, source: 'attention' }] } satisfies ToWebview);
  const cite = w.page.locator('.citation');
  await cite.waitFor();
  assert.equal(await cite.textContent(), 'src/app.ts:3–9');
  await cite.click();
  await w.waitForPosted('open');
  const open = (await w.posted()).find((m) => m.type === 'open');
  assert.deepEqual(open, { type: 'open', citation: { file: 'src/app.ts', startLine: 3, endLine: 9 } });
  assert.equal(await w.page.locator('#stop').evaluate((b) => (b as HTMLElement & { disabled: boolean }).disabled), true, 'Stop is disabled when done');
  assert.deepEqual(await w.violations(), []);
  await w.page.close();
});

test('model output containing HTML is shown as text, never as markup', async () => {
  const w = await openWebview(chrome, 'chat');
  const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> **<b>bold</b>**';
  await w.send({ type: 'turn', turn: turn(1, { answer: evil, status: 'done' }) } satisfies ToWebview);
  const answer = w.page.locator('.answer');
  await answer.locator('strong').waitFor();
  assert.equal(await answer.locator('img, script, b').count(), 0);
  assert.match((await answer.textContent()) ?? '', /<img src=x onerror=/);
  assert.equal(await w.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
  await w.page.close();
});

test('invalid messages are refused and reported, the page is unchanged', async () => {
  const w = await openWebview(chrome, 'chat');
  await w.send({ type: 'turn', turn: { id: -1, question: 'q', answer: '', status: 'streaming', citations: [] } });
  await w.send({ type: 'end', turnId: 1, status: 'done', citations: [{ file: '../../etc/passwd', startLine: 1, endLine: 1, weight: 0, source: 'mention' }] });
  await w.send({ type: 'nonsense' });
  await w.waitForPosted('invalid', 3);
  const reasons = (await w.posted()).filter((m) => m.type === 'invalid').map((m) => m.reason);
  assert.match(String(reasons[0]), /id must be an integer/);
  assert.match(String(reasons[1]), /workspace-relative path/);
  assert.match(String(reasons[2]), /unknown message type/);
  assert.equal(await w.page.locator('.turn').count(), 0);
  await w.page.close();
});

test('Enter asks, Stop stops, and error actions are offered', async () => {
  const w = await openWebview(chrome, 'chat');
  const box = w.page.locator('#question textarea');
  await box.fill('Where is the entry point?');
  await box.press('Enter');
  await w.waitForPosted('ask');
  assert.deepEqual((await w.posted()).find((m) => m.type === 'ask'), { type: 'ask', question: 'Where is the entry point?' });
  assert.equal(await box.inputValue(), '');

  await w.send({ type: 'turn', turn: turn(7, { question: 'Where is the entry point?' }) } satisfies ToWebview);
  await w.page.locator('#stop:not([disabled])').waitFor();
  await w.page.locator('#stop').click();
  await w.waitForPosted('stop');

  await w.send({ type: 'error', turnId: 7, message: 'Model folder /nope does not exist.', actions: ['openSettings', 'retry'] } satisfies ToWebview);
  const err = w.page.locator('.turn[data-turn-id="7"] .error');
  await err.waitFor();
  assert.match((await err.textContent()) ?? '', /does not exist/);
  await err.locator('[data-action="retry"]').click();
  await w.waitForPosted('action');
  assert.deepEqual((await w.posted()).find((m) => m.type === 'action'), { type: 'action', action: 'retry', turnId: 7 });
  await w.page.close();
});

test('the conversation is saved with setState and restored on reload', async () => {
  const w = await openWebview(chrome, 'chat');
  await w.send({ type: 'turn', turn: turn(3, { answer: 'Saved *answer*', status: 'done' }) } satisfies ToWebview);
  await w.send({ type: 'turn', turn: turn(4, { answer: 'half', status: 'streaming' }) } satisfies ToWebview);
  await w.page.locator('.turn[data-turn-id="4"]').waitFor();
  await w.page.waitForFunction(() => ((window as unknown as { __state?: { turns?: unknown[] } }).__state?.turns?.length ?? 0) === 2);
  const saved = await w.savedState();
  await w.page.close();

  const again = await openWebview(chrome, 'chat', saved);
  assert.equal(await again.page.locator('.turn').count(), 2);
  assert.equal(await again.page.locator('.turn[data-turn-id="3"] em').textContent(), 'answer');
  assert.equal(await again.page.locator('.turn[data-turn-id="4"]').getAttribute('data-status'), 'stopped', 'an interrupted answer shows as stopped');
  await again.page.close();
});
