import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecentEdits } from '../../src/ui/recentEdits';

test('lists edits most recent first, each once', () => {
  const r = new RecentEdits();
  r.record('a.ts');
  r.record('b.ts');
  r.record('a.ts');
  assert.deepEqual(r.list(), ['a.ts', 'b.ts']);
});

test('drops the least recent edit beyond the cap', () => {
  const r = new RecentEdits(2);
  r.record('a.ts');
  r.record('b.ts');
  r.record('a.ts');
  r.record('c.ts');
  assert.deepEqual(r.list(), ['c.ts', 'a.ts']);
});

test('forgets deleted files', () => {
  const r = new RecentEdits();
  r.record('a.ts');
  r.record('b.ts');
  r.forget('a.ts');
  r.forget('missing.ts');
  assert.deepEqual(r.list(), ['b.ts']);
});
