// The walk: .gitignore at every level, exclude globs, vendored folders, symlinks (never followed),
// special files, folders that vanish mid-walk, cancellation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { buildContext } from '../../src/context/index';
import { globToRegExp } from '../../src/context/glob';
import { FakeTokenizer, makeRepo, reasonOf } from './context-helpers';

const budgetTokens = 1_000_000;

test('.gitignore files apply at every level, deeper rules win, negations re-include', async () => {
  const repo = makeRepo({
    '.gitignore': '*.log\nsecret/\n/top-only.txt\n',
    'a.ts': 'a\n',
    'debug.log': 'x\n',
    'top-only.txt': 'x\n',
    'secret/key.txt': 'x\n',
    'sub/top-only.txt': 'kept: the rule is anchored to the root\n',
    'sub/.gitignore': '!keep.log\ngenerated-*\n',
    'sub/keep.log': 'kept by the negation\n',
    'sub/other.log': 'x\n',
    'sub/generated-1.ts': 'x\n',
    'sub/deeper/.gitignore': 'drop.ts\n',
    'sub/deeper/drop.ts': 'x\n',
    'sub/deeper/stay.ts': 'stay\n',
    'other/drop.ts': 'kept: the deeper .gitignore does not reach here\n',
  });
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens });
    const paths = ctx.files.map((f) => f.path).sort();
    assert.deepEqual(paths, [
      '.gitignore', 'a.ts', 'other/drop.ts', 'sub/.gitignore', 'sub/deeper/.gitignore', 'sub/deeper/stay.ts', 'sub/keep.log', 'sub/top-only.txt',
    ]);
  } finally {
    repo.cleanup();
  }
});

test('exclude globs (VS Code files.exclude) prune files and whole folders', async () => {
  const repo = makeRepo({
    'keep.ts': 'k\n',
    'x.tmp': 'x\n',
    'deep/er/y.tmp': 'x\n',
    'docs/a.md': 'x\n',
    'docs/more/b.md': 'x\n',
    'a/gen.ts': 'x\n',
    'b/gen.ts': 'x\n',
    'c/gen.ts': 'kept\n',
  });
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens, exclude: ['**/*.tmp', 'docs', '{a,b}/gen.ts'] });
    assert.deepEqual(ctx.files.map((f) => f.path).sort(), ['c/gen.ts', 'keep.ts']);
  } finally {
    repo.cleanup();
  }
});

test('glob translation', () => {
  const cases: [string, string, boolean][] = [
    ['**/.git', '.git', true],
    ['**/.git', 'a/b/.git', true],
    ['**/node_modules', 'x/node_modules', true],
    ['*.js', 'a.js', true],
    ['*.js', 'src/a.js', false],
    ['src/**/*.js', 'src/a.js', true],
    ['src/**/*.js', 'src/x/y/a.js', true],
    ['src/**', 'src/x/y', true],
    ['file?.txt', 'file1.txt', true],
    ['file?.txt', 'file10.txt', false],
    ['[!a]b', 'cb', true],
    ['[!a]b', 'ab', false],
    ['**/*.{png,jpg}', 'i/x.jpg', true],
    ['a.b', 'axb', false],
  ];
  for (const [glob, p, expected] of cases) assert.equal(globToRegExp(glob).test(p), expected, `${glob} vs ${p}`);
});

test('vendored folders are not walked and are reported once', async () => {
  const repo = makeRepo({
    'index.js': 'x\n',
    'node_modules/dep/index.js': 'x\n',
    'vendor/lib.c': 'x\n',
    'third_party/z.py': 'x\n',
    'dist/out.js': 'x\n',
    'src/build/gen.ts': 'x\n',
  });
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens });
    assert.deepEqual(ctx.files.map((f) => f.path), ['index.js']);
    assert.match(reasonOf(ctx.skipped, 'node_modules/')!, /vendored/);
    assert.match(reasonOf(ctx.skipped, 'vendor/')!, /vendored/);
    assert.match(reasonOf(ctx.skipped, 'third_party/')!, /vendored/);
    assert.match(reasonOf(ctx.skipped, 'dist/')!, /build output/);
    assert.match(reasonOf(ctx.skipped, 'src/build/')!, /build output/);
    assert.ok(!ctx.skipped.some((s) => s.path.startsWith('node_modules/dep')), 'nothing inside a vendored folder is listed');
  } finally {
    repo.cleanup();
  }
});

test('symbolic links are never followed: loops, links out of the root, dangling links', async () => {
  const repo = makeRepo({ 'a/x.ts': 'x\n', 'real.ts': 'real\n' });
  const outside = makeRepo({ 'outside.ts': 'must not be read\n' });
  try {
    symlinkSync('..', join(repo.root, 'a', 'loop'));              // a/loop -> the root: a cycle
    symlinkSync('self', join(repo.root, 'self'));                  // self -> self: ELOOP
    symlinkSync(outside.root, join(repo.root, 'out'));             // out of the root
    symlinkSync('missing.ts', join(repo.root, 'dangling.ts'));     // target absent
    symlinkSync('real.ts', join(repo.root, 'alias.ts'));           // inside: read at its own path
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens });
    assert.deepEqual(ctx.files.map((f) => f.path).sort(), ['a/x.ts', 'real.ts']);
    assert.ok(!ctx.text.includes('must not be read'));
    assert.match(reasonOf(ctx.skipped, 'a/loop')!, /symbolic link, not followed/);
    assert.match(reasonOf(ctx.skipped, 'self')!, /symbolic link loop/);
    assert.match(reasonOf(ctx.skipped, 'out')!, /outside the repository/);
    assert.match(reasonOf(ctx.skipped, 'dangling.ts')!, /dangling symbolic link/);
    assert.match(reasonOf(ctx.skipped, 'alias.ts')!, /its target real\.ts is read at its own path/);
  } finally {
    repo.cleanup();
    outside.cleanup();
  }
});

// The tests run as root, where chmod 000 does not stop a read, so "unreadable" is produced by
// what root cannot read either: a FIFO (must be skipped without being opened: opening one
// blocks until a writer comes), a folder and a file that disappear between listing and reading.
test('unreadable entries: a FIFO is skipped unopened, vanished folders and files are reported', async () => {
  const repo = makeRepo({ 'a/x.ts': 'x\n', 'b-vanishes/y.ts': 'y\n', 'c/z.ts': 'z\n', 'd-file-vanishes.ts': 'v\n' });
  try {
    const fifo = spawnSync('mkfifo', [join(repo.root, 'pipe')]);
    assert.equal(fifo.status, 0, 'mkfifo');
    let removedFolder = false;
    let removedFile = false;
    const ctx = await buildContext({
      root: repo.root,
      tokenizer: new FakeTokenizer(),
      budgetTokens,
      onProgress: (p) => {
        // After the root is listed (its entries include b-vanishes/), remove that folder.
        if (p.phase === 'walk' && !removedFolder) {
          rmSync(join(repo.root, 'b-vanishes'), { recursive: true });
          removedFolder = true;
        }
        // After the walk (the file is a candidate), remove a file before it is read.
        if (p.phase === 'read' && !removedFile) {
          rmSync(join(repo.root, 'd-file-vanishes.ts'));
          removedFile = true;
        }
      },
    });
    assert.deepEqual(ctx.files.map((f) => f.path).sort(), ['a/x.ts', 'c/z.ts']);
    assert.match(reasonOf(ctx.skipped, 'pipe')!, /not a regular file \(FIFO\)/);
    assert.match(reasonOf(ctx.skipped, 'b-vanishes/')!, /unreadable folder: ENOENT/);
    assert.match(reasonOf(ctx.skipped, 'd-file-vanishes.ts')!, /unreadable: ENOENT/);
  } finally {
    repo.cleanup();
  }
});

test('unreadable by permissions (chmod 000): a file and a folder are reported', { skip: process.getuid?.() === 0 ? 'running as root, which reads regardless of permissions' : false }, async () => {
  const repo = makeRepo({ 'ok.ts': 'ok\n', 'locked.ts': 'x\n', 'closed/inner.ts': 'x\n' });
  try {
    chmodSync(join(repo.root, 'locked.ts'), 0o000);
    chmodSync(join(repo.root, 'closed'), 0o000);
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens });
    assert.deepEqual(ctx.files.map((f) => f.path), ['ok.ts']);
    assert.match(reasonOf(ctx.skipped, 'locked.ts')!, /unreadable: EACCES/);
    assert.match(reasonOf(ctx.skipped, 'closed/')!, /unreadable folder: EACCES/);
  } finally {
    chmodSync(join(repo.root, 'closed'), 0o755);
    repo.cleanup();
  }
});

test('the walk stops at maxFiles candidates and says so', async () => {
  const repo = makeRepo({ 'a.ts': 'a\n', 'b.ts': 'b\n', 'c/d.ts': 'd\n', 'c/e.ts': 'e\n', 'f.ts': 'f\n' });
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens, maxFiles: 3 });
    assert.equal(ctx.files.length, 3);
    const stop = ctx.skipped.filter((s) => /the walk stops at 3 files/.test(s.reason));
    assert.equal(stop.length, 1, 'one line reports where the walk stopped');
  } finally {
    repo.cleanup();
  }
});

test('a missing root is a clear error naming it', async () => {
  await assert.rejects(
    buildContext({ root: '/nonexistent/repo-lens-x', tokenizer: new FakeTokenizer(), budgetTokens }),
    /repository folder \/nonexistent\/repo-lens-x cannot be opened/,
  );
});

test('cancellation: an aborted signal stops the build with an AbortError', async () => {
  const repo = makeRepo({ 'a.ts': 'a\n', 'b/c.ts': 'c\n' });
  try {
    const controller = new AbortController();
    const build = buildContext({
      root: repo.root,
      tokenizer: new FakeTokenizer(),
      budgetTokens,
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    await assert.rejects(build, (err: Error) => err.name === 'AbortError');
  } finally {
    repo.cleanup();
  }
});
