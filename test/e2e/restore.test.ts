// Panels survive "Developer: Reload Window": VS Code revives the chat and KV selection panels
// through the extension's serializers, each with its state (the conversation, the trace).
// Several reloads in a row, because a restore that works only sometimes is the bug this guards.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_DIR, runCommand, screenshot, startSession, webviewFrame, type Session } from './codeServer';

const FILES = ['README.md', 'lib/strings.js', 'src/app.ts', 'src/util/math.ts'];
const QUESTION = 'What does the add function do?';
const RELOADS = 3;
let s: Session;

before(async () => {
  assert.ok(existsSync(join(MODEL_DIR, 'model.safetensors')), `the test model is missing: ${MODEL_DIR}`);
  s = await startSession({ 'repoLens.modelPath': MODEL_DIR, 'repoLens.maxNewTokens': 24, 'repoLens.backend': 'cpu' }, { name: 'restore' });
});

after(async () => {
  if (s) await s.close();
});

/** Reloads as a user does (the workbench saves its state first), then waits for the new window. */
async function reloadWindow(): Promise<void> {
  const reloaded = s.page.waitForEvent('load');
  await runCommand(s.page, 'Developer: Reload Window');
  await reloaded;
  await s.page.locator('.monaco-workbench').waitFor();
}

test('an answer, then both panels open', async () => {
  await runCommand(s.page, 'Repo Lens: Ask the Repository');
  const chat = await webviewFrame(s.page, '#question');
  await chat.locator('#question textarea').fill(QUESTION);
  await chat.locator('#question textarea').press('Enter');
  await chat.locator('.turn[data-status="done"]').waitFor({ timeout: 180_000 });
  await runCommand(s.page, 'Repo Lens: Show KV Selection');
  await webviewFrame(s.page, '#grid .row');
});

for (let i = 1; i <= RELOADS; i++) {
  test(`reload ${i}/${RELOADS}: the KV selection panel comes back with its trace, the chat panel with its conversation`, async (t) => {
    await reloadWindow();
    // Both panels sit in visible editor groups, so VS Code revives both at once.
    const selection = await webviewFrame(s.page, '#grid .row', 30_000);
    const rows = await selection.locator('#grid .row').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-file')));
    assert.deepEqual(rows, FILES);
    const chat = await webviewFrame(s.page, '#turns .turn', 30_000);
    assert.equal(await chat.locator('.turn .question').first().textContent(), QUESTION);
    assert.equal(await chat.locator('.turn').first().getAttribute('data-status'), 'done');
    assert.ok(((await chat.locator('.turn .answer').first().textContent()) ?? '').trim().length > 0, 'the answer came back too');
    await screenshot(s.page, `9-restored-${i}`);
    // How often a page had to be loaded again (pageWatch.ts), so a run shows the race it works around.
    const reloaded = s.extensionLog().match(/did not report ready/g)?.length ?? 0;
    t.diagnostic(`pages loaded again by the extension so far: ${reloaded}`);
  });
}

test('a revived chat panel still answers', async () => {
  const chat = await webviewFrame(s.page, '#question');
  const before = await chat.locator('.turn').count();
  await chat.locator('#question textarea').fill('And what does the README say?');
  await chat.locator('#question textarea').press('Enter');
  const turn = chat.locator('.turn').nth(before);
  await turn.and(chat.locator('[data-status="done"], [data-status="error"]')).waitFor({ timeout: 180_000 });
  assert.equal(await turn.getAttribute('data-status'), 'done');
});
