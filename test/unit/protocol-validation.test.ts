// parseRequest / parseReply reject malformed messages with a message naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReply, parseRequest, ProtocolError } from '../../src/engine/protocol';

const generate = { type: 'generate', id: 3, prompt: { text: 'hi' }, maxNewTokens: 8, sampling: { temperature: 0, topP: 1, seed: 0 }, stopAtEos: true };
const load = { type: 'load', id: 1, modelDir: '/m', backend: 'auto', kvBlockSize: 32, contextTokens: 0, threads: 0 };

function rejects(f: () => unknown, field: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, String(e));
    assert.match(e.message, field);
    return true;
  });
}

test('valid requests pass through unchanged', () => {
  assert.deepEqual(parseRequest(generate), generate);
  assert.deepEqual(parseRequest(load), load);
  assert.deepEqual(parseRequest({ type: 'generate', id: 4, prompt: { ids: [1, 2] }, maxNewTokens: 0, sampling: { temperature: 0.7, topP: 0.9, seed: 5 }, stopAtEos: false }).type, 'generate');
  assert.deepEqual(parseRequest({ type: 'cancel', id: 5, target: 3 }), { type: 'cancel', id: 5, target: 3 });
});

test('load: prefillPrecision is optional and passes through when float32 or half', () => {
  assert.equal('prefillPrecision' in parseRequest(load), false);
  assert.deepEqual(parseRequest({ ...load, prefillPrecision: 'half' }), { ...load, prefillPrecision: 'half' });
  assert.deepEqual(parseRequest({ ...load, prefillPrecision: 'float32' }), { ...load, prefillPrecision: 'float32' });
  rejects(() => parseRequest({ ...load, prefillPrecision: 'bf16' }), /prefillPrecision must be one of float32, half/);
  rejects(() => parseRequest({ ...load, prefillPrecision: 16 }), /prefillPrecision must be a string/);
});

test('malformed requests name the field', () => {
  rejects(() => parseRequest(null), /request must be an object/);
  rejects(() => parseRequest([]), /request must be an object/);
  rejects(() => parseRequest({ ...generate, id: -1 }), /^id must be >= 0/);
  rejects(() => parseRequest({ ...generate, id: 1.5 }), /^id must be an integer/);
  rejects(() => parseRequest({ ...generate, type: 'explode' }), /unknown request type "explode"/);
  rejects(() => parseRequest({ ...generate, prompt: 'hi' }), /prompt must be an object/);
  rejects(() => parseRequest({ ...generate, prompt: { ids: [1, -2] } }), /ids must be an array of non-negative integers/);
  rejects(() => parseRequest({ ...generate, prompt: { text: 5 } }), /text must be a string/);
  rejects(() => parseRequest({ ...generate, maxNewTokens: '8' }), /maxNewTokens must be a finite number/);
  rejects(() => parseRequest({ ...generate, sampling: { temperature: -1, topP: 1, seed: 0 } }), /temperature must be >= 0/);
  rejects(() => parseRequest({ ...generate, sampling: { temperature: 1, topP: 1.5, seed: 0 } }), /topP must be <= 1/);
  rejects(() => parseRequest({ ...generate, sampling: { temperature: 1, topP: 1, seed: NaN } }), /seed must be a finite number/);
  rejects(() => parseRequest({ ...generate, stopAtEos: 'yes' }), /stopAtEos must be a boolean/);
  rejects(() => parseRequest({ ...load, backend: 'tpu' }), /backend must be one of auto, cuda, cpu, webgpu/);
  rejects(() => parseRequest({ ...load, kvBlockSize: 0 }), /kvBlockSize must be >= 1/);
  rejects(() => parseRequest({ ...load, modelDir: undefined }), /modelDir must be a string/);
  rejects(() => parseRequest({ type: 'cancel', id: 2 }), /target must be a finite number/);
  rejects(() => parseRequest({ type: 'tokenize', id: 2, text: 'x' }), /addSpecialTokens must be a boolean/);
});

test('malformed replies name the field', () => {
  assert.deepEqual(parseReply({ type: 'token', id: 3, tokenId: 5, text: 'a' }), { type: 'token', id: 3, tokenId: 5, text: 'a' });
  assert.equal(parseReply({ type: 'error', id: 3, code: 'timeout', message: 'm' }).type, 'error');
  rejects(() => parseReply({ type: 'token', id: 3, tokenId: -5, text: 'a' }), /tokenId must be >= 0/);
  rejects(() => parseReply({ type: 'error', id: 3, code: 'oops', message: 'm' }), /code must be one of/);
  rejects(() => parseReply({ type: 'generated', id: 3, result: { promptTokens: 1, prefilledTokens: 1, ids: [], text: '', finishReason: 'tired' } }), /finishReason must be one of eos, length, cancelled/);
  rejects(() => parseReply({ type: 'progress', id: 3, phase: 'prefill', done: 1 }), /total must be a finite number/);
  rejects(() => parseReply({ type: 'ready', id: 3, info: { modelDir: 'm' } }), /backend must be a string/);
  rejects(() => parseReply({ type: 'nope', id: 3 }), /unknown reply type "nope"/);
});
