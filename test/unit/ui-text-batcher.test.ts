// TextBatcher (src/ui/textBatcher.ts): an answer's tokens reach the chat page as a few joined messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextBatcher } from '../../src/ui/textBatcher';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('texts pushed within the interval arrive as one message, in order, once the interval has passed', async () => {
  const sent: string[] = [];
  const b = new TextBatcher((t) => sent.push(t), 40, 8192);
  for (const t of ['Once', ' upon', ' a', ' time']) b.push(t);
  assert.deepEqual(sent, [], 'nothing before the interval');
  await sleep(120);
  assert.deepEqual(sent, ['Once upon a time']);
  b.push('.');
  await sleep(120);
  assert.deepEqual(sent, ['Once upon a time', '.'], 'a later push starts a new interval');
});

test('flush sends what is buffered at once, and nothing more comes later', async () => {
  const sent: string[] = [];
  const b = new TextBatcher((t) => sent.push(t), 40, 8192);
  b.flush();
  assert.deepEqual(sent, [], 'an empty buffer sends nothing');
  b.push('a');
  b.push('b');
  b.flush();
  assert.deepEqual(sent, ['ab']);
  await sleep(120);
  assert.deepEqual(sent, ['ab'], 'the timer was stopped');
});

test('a batch is sent early rather than grow past maxChars', () => {
  const sent: string[] = [];
  const b = new TextBatcher((t) => sent.push(t), 10_000, 5);
  b.push('abc');
  b.push('de');
  b.push('f');
  assert.deepEqual(sent, ['abcde']);
  b.flush();
  assert.deepEqual(sent, ['abcde', 'f']);
});
