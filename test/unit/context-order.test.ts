// Prompt order: README and manifests first, then folder by folder, recently edited files last.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { buildContext } from '../../src/context/index';
import { orderFiles } from '../../src/context/order';
import { FakeTokenizer, makeRepo, reasonOf } from './context-helpers';

const budgetTokens = 1_000_000;

test('README first, then manifests, then files folder by folder (a folder before its subfolders)', async () => {
  const repo = makeRepo({
    'z.ts': 'z\n',
    'b/x.ts': 'x\n',
    'a-b/y.ts': 'y\n',
    'a/b/c.ts': 'c\n',
    'a/z.ts': 'z\n',
    'a/a.ts': 'a\n',
    'Cargo.toml': '[package]\n',
    'package.json': '{}\n',
    'README.md': '# hi\n',
    'a/README.md': 'not a lead file: not at the root\n',
    'A.ts': 'upper case sorts before lower case (byte order)\n',
  });
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens, recentFiles: [] });
    assert.deepEqual(ctx.files.map((f) => f.path), [
      'README.md', 'package.json', 'Cargo.toml', 'A.ts', 'z.ts', 'a/README.md', 'a/a.ts', 'a/z.ts', 'a/b/c.ts', 'a-b/y.ts', 'b/x.ts',
    ]);
  } finally {
    repo.cleanup();
  }
});

test('recentFiles (relative or absolute) go last, the most recent at the very end', async () => {
  const repo = makeRepo({ 'README.md': 'r\n', 'a.ts': 'a\n', 'b.ts': 'b\n', 'c/d.ts': 'd\n', 'e.ts': 'e\n' });
  try {
    const ctx = await buildContext({
      root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens,
      recentFiles: ['a.ts', join(repo.root, 'c', 'd.ts'), 'not-there.ts', '/elsewhere/e.ts'],
    });
    assert.deepEqual(ctx.files.map((f) => f.path), ['README.md', 'b.ts', 'e.ts', 'c/d.ts', 'a.ts']);
  } finally {
    repo.cleanup();
  }
});

test('without a list, files edited well after the rest (by mtime) go last; a fresh clone keeps folder order', () => {
  const day = 24 * 3600 * 1000;
  const base = Date.now() - 10 * day;
  const files = ['a.ts', 'b.ts', 'c.ts', 'd.ts', 'e.ts'].map((path) => ({ path, size: 1, mtimeMs: base }));
  assert.deepEqual(orderFiles(files).map((f) => f.path), ['a.ts', 'b.ts', 'c.ts', 'd.ts', 'e.ts']);
  files[1].mtimeMs = base + 2 * day; // b edited last
  files[3].mtimeMs = base + day;     // d before it
  const ordered = orderFiles(files);
  assert.deepEqual(ordered.map((f) => f.path), ['a.ts', 'c.ts', 'e.ts', 'd.ts', 'b.ts']);
  assert.deepEqual(ordered.map((f) => f.group), ['body', 'body', 'body', 'recent', 'recent']);
});

test('mtimes on disk are used when no list is given', async () => {
  const repo = makeRepo({ 'a.ts': 'a\n', 'b.ts': 'b\n', 'c.ts': 'c\n' });
  try {
    const old = new Date(Date.now() - 3600_000);
    for (const p of ['a.ts', 'b.ts', 'c.ts']) utimesSync(join(repo.root, p), old, old);
    utimesSync(join(repo.root, 'a.ts'), new Date(), new Date());
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens });
    assert.deepEqual(ctx.files.map((f) => f.path), ['b.ts', 'c.ts', 'a.ts']);
  } finally {
    repo.cleanup();
  }
});

test('the budget goes to README/manifests, then recent files, then the rest; the prompt order is kept', async () => {
  const body = 'x'.repeat(59) + '\n'; // 20 fake tokens of content
  const repo = makeRepo({ 'README.md': body, 'a.ts': body, 'b.ts': body, 'c.ts': body });
  try {
    const tokenizer = new FakeTokenizer();
    const segment = (p: string) => tokenizer.encode(`### FILE: ${p}\n${body}`).length;
    const budget = segment('README.md') + segment('c.ts') + segment('a.ts') + 2;
    const ctx = await buildContext({ root: repo.root, tokenizer, budgetTokens: budget, recentFiles: ['c.ts'] });
    assert.deepEqual(ctx.files.map((f) => f.path), ['README.md', 'a.ts', 'c.ts']);
    assert.match(reasonOf(ctx.skipped, 'b.ts')!, /^over budget/);
  } finally {
    repo.cleanup();
  }
});
