// TextBatcher (src/ui/textBatcher.ts): an answer's tokens reach the chat page at once, then as a few joined messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextBatcher } from '../../src/ui/textBatcher';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the first text goes out at once; those within the interval after it arrive as one message, in order', async () => {
  const sent: string[] = [];
  const b = new TextBatcher((t) => sent.push(t), 40, 8192);
  for (const t of ['Once', ' upon', ' a', ' time']) b.push(t);
  assert.deepEqual(sent, ['Once'], 'the first at once, the rest held');
  await sleep(150);
  assert.deepEqual(sent, ['Once', ' upon a time']);
  b.push('.');
  assert.deepEqual(sent, ['Once', ' upon a time', '.'], 'after a quiet interval a text goes out at once again');
  b.flush();
});

test('flush sends what is held at once, and nothing more comes later', async () => {
  const sent: string[] = [];
  const b = new TextBatcher((t) => sent.push(t), 40, 8192);
  b.flush();
  assert.deepEqual(sent, [], 'nothing held sends nothing');
  b.push('a');
  b.push('b');
  b.push('c');
  b.flush();
  assert.deepEqual(sent, ['a', 'bc']);
  await sleep(150);
  assert.deepEqual(sent, ['a', 'bc'], 'the timer was stopped');
});

test('a held batch is sent early rather than grow past maxChars', () => {
  const sent: string[] = [];
  const b = new TextBatcher((t) => sent.push(t), 10_000, 5);
  b.push('x');
  b.push('abc');
  b.push('de');
  b.push('f');
  assert.deepEqual(sent, ['x', 'abcde']);
  b.flush();
  assert.deepEqual(sent, ['x', 'abcde', 'f']);
});
