// Cancel on the progress notification: on a workspace of 30,000 files, reading it takes seconds.
// Cancel there stops the answer (the turn shows as stopped with no answer, the worker logs where
// it stopped, nothing is prefilled), and the next question is answered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertAnswered, MODEL_DIR, runCommand, screenshot, startSession, webviewFrame, type Session } from './codeServer';

const FOLDERS = 300;
const FILES_PER_FOLDER = 100;
let s: Session;

/** The fixture plus gen/: FOLDERS × FILES_PER_FOLDER small TypeScript files. */
function fillLargeWorkspace(dir: string): void {
  cpSync('test/e2e/workspace', dir, { recursive: true });
  for (let d = 0; d < FOLDERS; d++) {
    const folder = join(dir, 'gen', `pkg${d}`);
    mkdirSync(folder, { recursive: true });
    for (let f = 0; f < FILES_PER_FOLDER; f++) {
      writeFileSync(join(folder, `f${f}.ts`), `export function f${d}_${f}(x: number): number {\n  return x + ${f};\n}\n`);
    }
  }
}

before(async () => {
  s = await startSession({
    'repoLens.modelPath': MODEL_DIR, 'repoLens.maxNewTokens': 16, 'repoLens.backend': 'cpu',
    // The editor need not watch the generated files; Repo Lens still reads them.
    'files.watcherExclude': { '**/gen/**': true },
  }, { fillWorkspace: fillLargeWorkspace, name: 'cancel' });
});

after(async () => {
  if (s) await s.close();
});

const count = (re: RegExp) => s.extensionLog().match(re)?.length ?? 0;
const PREFILL_REPORT = /prompt \d+ tokens, prefilled \d+/g;

async function waitFor(what: string, ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !ok(); await new Promise((r) => setTimeout(r, 250))) {
    assert.ok(Date.now() < deadline, what);
  }
}

test('Cancel on the progress notification while the workspace is read stops the answer', async () => {
  await runCommand(s.page, 'Repo Lens: Ask the Repository');
  const chat = await webviewFrame(s.page, '#question');
  const reportsBefore = count(PREFILL_REPORT);
  await chat.locator('#question textarea').fill('Where is f7_3 defined?');
  await chat.locator('#question textarea').press('Enter');
  const toast = s.page.locator('.notifications-toasts .notification-list-item', { hasText: 'Reading the workspace' }).first();
  await toast.waitFor({ timeout: 120_000 });
  await screenshot(s.page, '11-cancel-progress');
  await toast.locator('.monaco-button', { hasText: 'Cancel' }).click();

  const turn = chat.locator('.turn').last();
  await turn.and(chat.locator('[data-status="stopped"], [data-status="done"], [data-status="error"]')).waitFor({ timeout: 60_000 });
  assert.equal(await turn.getAttribute('data-status'), 'stopped');
  assert.equal(((await turn.locator('.answer').textContent()) ?? '').trim(), '', 'no answer');
  await waitFor('the worker logs that the answer was cancelled while reading the workspace', () => count(/answer \d+ cancelled after \d+ ms, while reading the workspace/g) === 1);
  await toast.waitFor({ state: 'detached', timeout: 30_000 });
  // Nothing went on to the model: no prefill report for the cancelled question, even a while later.
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(count(PREFILL_REPORT), reportsBefore, 'nothing was prefilled');
  await screenshot(s.page, '11-cancelled');
});

test('after a Cancel, the next question is answered', async () => {
  const chat = await webviewFrame(s.page, '#question');
  const reportsBefore = count(PREFILL_REPORT);
  await chat.locator('#question textarea').fill('What does f1_1 do?');
  await chat.locator('#question textarea').press('Enter');
  const turn = chat.locator('.turn').last();
  await turn.locator('.question', { hasText: 'What does f1_1 do?' }).waitFor();
  await turn.and(chat.locator('[data-status="done"], [data-status="error"], [data-status="stopped"]')).waitFor({ timeout: 300_000 });
  await assertAnswered(turn);
  assert.ok(((await turn.locator('.answer').textContent()) ?? '').trim().length > 0, 'an answer');
  await waitFor('a prefill report for the answer', () => count(PREFILL_REPORT) === reportsBefore + 1);
  await screenshot(s.page, '11-answer-after-cancel');
});
