// Workspace trust: with trust enabled, the fixture folder opens in Restricted Mode. The extension
// says what is disabled and why (status bar, and a warning with Manage Workspace Trust from each
// command), and no command opens a panel, starts the engine or reads the workspace into the model.
// Trusting the folder then enables them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertAnswered, MODEL_DIR, runCommand, screenshot, startSession, webviewFrame, type Session } from './codeServer';

const DISABLED = /not trusted, so Repo Lens does not read it into the model or start its engine \(Ask the Repository, Explain Selection and the KV selection panel are disabled\)/;
let s: Session;

before(async () => {
  s = await startSession({ 'repoLens.modelPath': MODEL_DIR, 'repoLens.maxNewTokens': 16, 'repoLens.backend': 'cpu' }, { workspaceTrust: true, name: 'trust' });
});

after(async () => {
  if (s) await s.close();
});

/** Whether any webview frame shows `selector` now. */
async function anyFrameShows(selector: string): Promise<boolean> {
  for (const f of s.page.frames()) {
    if (await f.$(selector).catch(() => null)) return true;
  }
  return false;
}

/** The warning a command shows in Restricted Mode; clears it afterwards (VS Code merges identical notifications). */
async function expectRestrictedWarning(command: string): Promise<void> {
  await runCommand(s.page, command);
  const toast = s.page.locator('.notifications-toasts .notification-list-item', { hasText: 'Repo Lens' }).last();
  await toast.waitFor();
  assert.match((await toast.locator('.notification-list-item-message').textContent()) ?? '', DISABLED);
  assert.equal(await toast.locator('.monaco-button', { hasText: 'Manage Workspace Trust' }).count(), 1, 'the warning offers Manage Workspace Trust');
  await screenshot(s.page, `10-untrusted-${command.replace(/\W+/g, '-')}`);
  await runCommand(s.page, 'Notifications: Clear All Notifications');
  await toast.waitFor({ state: 'detached' });
}

test('the folder opened in Restricted Mode and the status bar says what is disabled', async () => {
  const item = s.page.locator('.statusbar-item', { hasText: 'Repo Lens' }).first();
  assert.match((await item.textContent()) ?? '', /Repo Lens: Restricted Mode/);
  await item.hover();
  await s.page.locator('.monaco-hover, .workbench-hover', { hasText: 'does not read it into the model' }).first().waitFor();
});

test('each command says what is disabled and why, and runs nothing', async () => {
  await expectRestrictedWarning('Repo Lens: Ask the Repository');
  await expectRestrictedWarning('Repo Lens: Show KV Selection');
  // Explain Selection is listed only with a selection.
  await s.page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' }).first().dblclick();
  await s.page.locator('.tabs-container .tab.active', { hasText: 'README.md' }).waitFor();
  await s.page.locator('.monaco-editor .view-lines').first().click();
  await s.page.keyboard.press('Control+A');
  await expectRestrictedWarning('Repo Lens: Explain Selection');
  assert.equal(await anyFrameShows('#question'), false, 'no chat panel opened');
  assert.equal(await anyFrameShows('#grid'), false, 'no KV selection panel opened');
  assert.deepEqual(s.enginePids(), [], 'no engine process started');
  assert.doesNotMatch(s.extensionLog(), /model loaded|prompt \d+ tokens/, 'nothing was read into a model');
});

test('after trusting the folder, Ask the Repository answers', async () => {
  await runCommand(s.page, 'Workspaces: Manage Workspace Trust');
  const trust = s.page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust$/ }).first();
  await trust.click();
  const item = s.page.locator('.statusbar-item', { hasText: 'Repo Lens' }).first();
  await s.page.waitForFunction((el) => !el?.textContent?.includes('Restricted Mode'), await item.elementHandle(), { timeout: 30_000 });
  await runCommand(s.page, 'Repo Lens: Ask the Repository');
  const chat = await webviewFrame(s.page, '#question');
  await chat.locator('#question textarea').fill('What does the add function do?');
  await chat.locator('#question textarea').press('Enter');
  const turn = chat.locator('.turn').last();
  await turn.and(chat.locator('[data-status="done"], [data-status="error"]')).waitFor({ timeout: 180_000 });
  await assertAnswered(turn);
  await screenshot(s.page, '10-trusted-answer');
});
