// The protocol's disk-cache fields: generate.cache (request) and result.cache (reply) are optional,
// validated field by field, and absent when not asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReply, parseRequest, ProtocolError } from '../../src/engine/protocol';

const generate = { type: 'generate', id: 3, prompt: { ids: [1, 2, 3] }, maxNewTokens: 4, sampling: { temperature: 0, topP: 1, seed: 0 }, stopAtEos: true };
const generated = { type: 'generated', id: 3, result: { promptTokens: 3, prefilledTokens: 1, ids: [5], text: 'x', finishReason: 'length' } };

test('generate.cache: optional; dir, key, prefixTokens and an optional maxBytes', () => {
  assert.equal('cache' in parseRequest(generate), false);
  const cache = { dir: '/tmp/c', key: '/repo', prefixTokens: 2 };
  assert.deepEqual(parseRequest({ ...generate, cache }), { ...generate, cache });
  assert.deepEqual(parseRequest({ ...generate, cache: { ...cache, maxBytes: 1024 } }), { ...generate, cache: { ...cache, maxBytes: 1024 } });
  for (const [bad, message] of [
    [{ ...cache, dir: 3 }, /dir must be a string/],
    [{ ...cache, key: null }, /key must be a string/],
    [{ ...cache, prefixTokens: -1 }, /prefixTokens must be >= 0/],
    [{ ...cache, prefixTokens: 1.5 }, /prefixTokens must be an integer/],
    [{ ...cache, maxBytes: 'big' }, /maxBytes must be a finite number/],
    ['yes', /cache must be an object/],
  ] as const) {
    assert.throws(() => parseRequest({ ...generate, cache: bad }), (e: unknown) => e instanceof ProtocolError && message.test(e.message));
  }
});

test('result.cache: optional; restored and saved counts and notes', () => {
  const plain = parseReply(generated);
  assert.ok(plain.type === 'generated' && !('cache' in plain.result));
  const cache = { restoredTokens: 2, savedTokens: 0, notes: ['discarded /c/x.rlkv: checksum mismatch in KV chunk 0 of 1'] };
  const r = parseReply({ ...generated, result: { ...generated.result, cache } });
  assert.ok(r.type === 'generated');
  assert.deepEqual(r.result.cache, cache);
  assert.throws(() => parseReply({ ...generated, result: { ...generated.result, cache: { ...cache, notes: [1] } } }), /notes must be an array of strings/);
  assert.throws(() => parseReply({ ...generated, result: { ...generated.result, cache: { ...cache, savedTokens: -1 } } }), /savedTokens must be >= 0/);
});
