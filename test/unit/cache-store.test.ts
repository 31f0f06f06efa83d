// A disk-cache folder (src/cache/store.ts): entry names, the size cap with least-recently-used
// eviction, clearing (our files only), and temporary files of live writers left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeEntry } from '../../src/cache/format';
import { clearCache, entryFile, evict, listEntries, sweepAbandoned, touch } from '../../src/cache/store';
import { FINGERPRINT, SHAPE, syntheticSpan } from './cache-helpers';

function freshDir(): string {
  return mkdtempSync(join(tmpdir(), 'rl-cache-'));
}

/** An entry for `key` of `positions` positions, last used `ageS` seconds ago. */
function entry(dir: string, key: string, positions: number, ageS: number): string {
  const file = entryFile(dir, key, FINGERPRINT);
  writeEntry(file, { fingerprint: FINGERPRINT, shape: SHAPE, ids: Array.from({ length: positions }, (_, i) => i), readSpan: syntheticSpan });
  const when = new Date(Date.now() - ageS * 1000);
  utimesSync(file, when, when);
  return file;
}

test('entry names: one per key and fingerprint, stable', () => {
  const a = entryFile('/c', '/repo/a', FINGERPRINT);
  assert.equal(entryFile('/c', '/repo/a', { ...FINGERPRINT }), a);
  assert.notEqual(entryFile('/c', '/repo/b', FINGERPRINT), a);
  assert.notEqual(entryFile('/c', '/repo/a', { ...FINGERPRINT, kvBlockSize: 16 }), a);
  assert.match(a, /^\/c\/[0-9a-f]{32}\.rlkv$/);
});

test('the cap removes least recently used entries first; a use (touch) makes an entry recent; the new entry is kept', () => {
  const dir = freshDir();
  const oldest = entry(dir, 'a', 20, 300);
  const middle = entry(dir, 'b', 20, 200);
  const recent = entry(dir, 'c', 20, 100);
  const size = statSync(oldest).size;
  touch(oldest); // restored just now: most recent
  const newest = entry(dir, 'd', 20, 0);
  const removed = evict(dir, 2 * size + 10, newest);
  assert.deepEqual(removed, [middle, recent]);
  assert.deepEqual(listEntries(dir).map((e) => e.file).sort(), [oldest, newest].sort());
  assert.deepEqual(evict(dir, 2 * size + 10, newest), [], 'under the cap: nothing to do');
  assert.deepEqual(evict(dir, 0, newest), [oldest], 'the entry just written stays even over the cap');
});

test('clearCache removes entries and temporary files, leaves other files, and accepts a missing folder', async () => {
  const dir = freshDir();
  entry(dir, 'a', 10, 0);
  entry(dir, 'b', 10, 0);
  writeFileSync(join(dir, 'x.rlkv.12345.0123abcd.tmp'), 'partial');
  writeFileSync(join(dir, 'notes.txt'), 'the user\'s own file');
  const r = await clearCache(dir);
  assert.equal(r.removed, 3);
  assert.ok(r.bytes > 0);
  assert.deepEqual(readdirSync(dir), ['notes.txt']);
  assert.deepEqual(await clearCache(join(dir, 'missing')), { removed: 0, bytes: 0 });
});

test('the sweep leaves temporary files of running writers (this process, a live one) alone', () => {
  const dir = freshDir();
  const own = join(dir, `a.rlkv.${process.pid}.0123abcd.tmp`);
  const parent = join(dir, `b.rlkv.${process.ppid}.0123abcd.tmp`);
  writeFileSync(own, 'x');
  writeFileSync(parent, 'x');
  assert.deepEqual(sweepAbandoned(dir), []);
  assert.ok(existsSync(own) && existsSync(parent));
  assert.deepEqual(sweepAbandoned(join(dir, 'missing')), []);
});
