import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefillPieces } from '../../src/engine/prefillPieces';

const limits = { step: 128, wholeChunk: 1024, max: 4096, targetMs: 200 };

/** The sizes a prefill of `total` tokens takes when a call of n tokens lasts msOf(n, done) ms. */
function sizes(total: number, msOf: (n: number, done: number) => number): number[] {
  const pieces = new PrefillPieces(limits);
  const out: number[] = [];
  for (let done = 0; done < total;) {
    const n = Math.min(pieces.next, total - done);
    out.push(n);
    pieces.took(n, msOf(n, done));
    done += n;
  }
  return out;
}

test('a fast backend: pieces double from the first step up to the cap', () => {
  assert.deepEqual(sizes(20000, (n) => n * 0.01), [128, 256, 512, 1024, 2048, 4096, 4096, 4096, 3744]);
});

test('a slow backend: pieces stay at the first step', () => {
  assert.deepEqual(sizes(640, (n) => n * 10), [128, 128, 128, 128, 128]);
});

test('pieces settle near the target time and shrink as calls get slower with the context', () => {
  // 0.02 ms a token, plus attention that grows with the tokens before the piece
  const msOf = (n: number, done: number) => n * (0.02 + done * 2e-6);
  const got = sizes(100000, msOf);
  let done = 0;
  got.forEach((n, i) => {
    if (i < got.length - 1) assert.equal(n % (n >= 1024 ? 1024 : 128), 0, `${got}`);
    if (i >= 8 && i < got.length - 1) {
      const ms = msOf(n, done);
      assert.ok(ms > limits.targetMs / 2 && ms < limits.targetMs * 2, `piece ${i}: ${n} tokens, ${ms.toFixed(0)} ms; ${got}`);
    }
    done += n;
  });
  assert.ok(got[got.length - 2] < Math.max(...got), `${got}`);
});

test('a short last piece changes the size only when it was slow', () => {
  const pieces = new PrefillPieces(limits);
  pieces.took(128, 1);
  assert.equal(pieces.next, 256);
  pieces.took(40, 1);  // short and fast: nothing learned
  assert.equal(pieces.next, 256);
  pieces.took(40, 900);  // short but slow: halve
  assert.equal(pieces.next, 128);
});
