// Issue 6, item 5: a hostile repository is handled with a report and bounded memory.
// One repository holds all the hostile things at once: 50,000 small files, binary files, a
// symlink loop, unreadable entries (a dangling link, a FIFO: see context-walk.test.ts for why
// chmod 000 is no test under root), a 100 MB sparse file, non-UTF-8 text and a non-UTF-8 file name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildContext, type ContextProgress } from '../../src/context/index';
import { FakeTokenizer, makeRepo, reasonOf } from './context-helpers';

const SMALL_FILES = 50_000;
const FOLDERS = 100;
const MB = 1024 * 1024;

test('hostile repository: 50,000 small files, binary, symlink loop, FIFO, dangling link, 100 MB file, non-UTF-8', { timeout: 300_000 }, async () => {
  const repo = makeRepo({ 'README.md': '# hostile\n' }, { inMemory: true });
  try {
    for (let d = 0; d < FOLDERS; d++) {
      const folder = join(repo.root, `pkg${String(d).padStart(3, '0')}`);
      mkdirSync(folder);
      for (let f = 0; f < SMALL_FILES / FOLDERS; f++) writeFileSync(join(folder, `m${String(f).padStart(3, '0')}.ts`), `export const v${f} = ${d};\n`);
    }
    writeFileSync(join(repo.root, 'blob.dat2'), Buffer.from([1, 2, 0, 3, 4, 0, 5]));
    writeFileSync(join(repo.root, 'logo.png'), Buffer.alloc(64));
    symlinkSync('.', join(repo.root, 'pkg000', 'loop'));
    symlinkSync('nowhere', join(repo.root, 'dangling.ts'));
    assert.equal(spawnSync('mkfifo', [join(repo.root, 'fifo')]).status, 0);
    const fd = openSync(join(repo.root, 'huge.log'), 'w');
    ftruncateSync(fd, 100 * MB);
    closeSync(fd);
    writeFileSync(join(repo.root, 'latin1.txt'), Buffer.from('r\xe9sum\xe9\n', 'latin1'));
    writeFileSync(Buffer.from(join(repo.root, 'caf\xe9.ts'), 'latin1'), 'a name that is not UTF-8\n');

    const tokenizer = new FakeTokenizer();
    let lastProgress: ContextProgress | undefined;
    let progressCalls = 0;
    global.gc?.();
    const before = process.memoryUsage();
    let peakRss = before.rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
    // A budget that holds about a fifth of the files: the rest is reported as over budget.
    const ctx = await buildContext({
      root: repo.root, tokenizer, budgetTokens: 100_000, recentFiles: [],
      onProgress: (p) => { lastProgress = p; progressCalls++; },
    });
    clearInterval(sampler);
    const after = process.memoryUsage();
    peakRss = Math.max(peakRss, after.rss);

    // Everything is accounted for: each small file is either in the context or reported.
    const smallIn = ctx.files.filter((f) => f.path.startsWith('pkg')).length;
    const smallOut = ctx.skipped.filter((s) => /^pkg\d{3}\/m\d{3}\.ts$/.test(s.path));
    assert.equal(smallIn + smallOut.length, SMALL_FILES);
    assert.ok(smallIn > 1000, `${smallIn} small files fit`);
    assert.ok(ctx.ids.length <= 100_000);
    for (const s of smallOut) assert.match(s.reason, /^over budget/);
    assert.equal(reasonOf(ctx.skipped, 'blob.dat2'), 'binary file (NUL bytes)');
    assert.equal(reasonOf(ctx.skipped, 'logo.png'), 'binary file (.png)');
    assert.match(reasonOf(ctx.skipped, 'pkg000/loop')!, /symbolic link, not followed/);
    assert.match(reasonOf(ctx.skipped, 'dangling.ts')!, /dangling symbolic link/);
    assert.match(reasonOf(ctx.skipped, 'fifo')!, /FIFO/);
    assert.match(reasonOf(ctx.skipped, 'huge.log')!, /over the size limit \(100\.0 MB/);
    assert.equal(ctx.files.find((f) => f.path === 'latin1.txt')?.encoding, 'windows-1252');
    assert.ok(ctx.text.includes('résumé'));
    assert.equal(reasonOf(ctx.skipped, 'caf\uFFFD.ts'), 'unreadable: its name is not valid UTF-8');
    assert.equal(ctx.files[0].path, 'README.md');
    assert.ok(progressCalls > FOLDERS, 'progress was reported');
    assert.equal(lastProgress?.phase, 'read');

    // Bounded memory: what is kept grows with the number of files (path, size, mtime, and a
    // report line for each file left out) and with the budget (the context itself), never with
    // the files' contents: the 100 MB file is not read, and each file read is dropped unless it
    // is in the context. Generous bounds (a few KB per file), far below reading the 100 MB file.
    const rssGrowth = peakRss - before.rss;
    const heapGrowth = after.heapUsed - before.heapUsed;
    console.log(`# 50k files: rss growth (peak) ${(rssGrowth / MB).toFixed(1)} MB, heap growth ${(heapGrowth / MB).toFixed(1)} MB, ${ctx.files.length} files in, ${ctx.skipped.length} reported`);
    assert.ok(rssGrowth < 192 * MB, `peak rss grew by ${(rssGrowth / MB).toFixed(1)} MB`);
    assert.ok(heapGrowth < 128 * MB, `heap grew by ${(heapGrowth / MB).toFixed(1)} MB`);
  } finally {
    repo.cleanup();
  }
});
