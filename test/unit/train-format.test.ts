// The default model was trained on prompts made by tools/train/tasks.py; the extension and the eval
// harness build theirs in TypeScript. These tests check the two agree, token for token, on the
// shipped tokenizer: the ask prompt of a held-out golden (made by tasks.encode in Python) is rebuilt
// with src/qa/prompt.ts and the context builder's per-file encoding, and the eval prompt of a
// key-value golden with src/eval/run.ts's taskPrompt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TextTokenizer } from '../../src/model/tokenizer';
import { contextTokenizer, questionPrompt } from '../../src/qa/prompt';
import { segmentText, HEADER_PREFIX } from '../../src/context/prompt';

const MODEL_DIR = join('models', 'repo-lens-code');
const goldens: { task: string; ids: number[]; prompt_tokens: number }[] =
  JSON.parse(readFileSync(join('test', 'fixtures', 'reference', 'repo-lens-code', 'golden.json'), 'utf8')).goldens;
const tokenizer = TextTokenizer.load(MODEL_DIR);
const trainingSystem = /SYSTEM = \('(.*?)'\s*\n\s*'(.*?)'\)/s.exec(readFileSync(join('tools', 'train', 'tasks.py'), 'utf8'));

test('the training system text is the ask pipeline\'s', () => {
  assert.ok(trainingSystem, 'SYSTEM not found in tools/train/tasks.py');
  const head = tokenizer.decode(questionPrompt(tokenizer, 'q').headIds);
  assert.equal(head, `<s>${trainingSystem[1]}${trainingSystem[2]}\n\n`);
});

test('an ask prompt from training equals the one the extension builds, id for id', () => {
  const golden = goldens.find((g) => g.task.startsWith('constant-value'))!;
  const prompt = golden.ids.slice(0, golden.prompt_tokens);
  const text = tokenizer.decode(prompt);
  const question = /\nQuestion: (.*)\nAnswer:$/s.exec(text)![1];
  const built = questionPrompt(tokenizer, question);
  // The files: after the head (whose system text itself mentions "### FILE:"), one per header line.
  const body = text.slice(tokenizer.decode(built.headIds).length, text.lastIndexOf('\nQuestion: '));
  assert.ok(body.startsWith(HEADER_PREFIX));
  const files = body.slice(HEADER_PREFIX.length).split(`\n${HEADER_PREFIX}`).map((f, i, all) => (i < all.length - 1 ? f + '\n' : f));
  assert.ok(files.length >= 2);
  const context = contextTokenizer(tokenizer);
  const repository = files.flatMap((f) => {
    const newline = f.indexOf('\n');
    return context.encode(segmentText(f.slice(0, newline), f.slice(newline + 1)));
  });
  assert.deepEqual([...built.headIds, ...repository, ...built.suffixIds], prompt);
});

test('an eval prompt from training equals taskPrompt with BOS, id for id', () => {
  const golden = goldens.find((g) => g.task.startsWith('kv-retrieval'))!;
  const prompt = golden.ids.slice(0, golden.prompt_tokens);
  const text = tokenizer.decode(prompt.slice(1));
  assert.equal(prompt[0], tokenizer.tokenId('<s>'));
  assert.deepEqual(tokenizer.encode(text, { addSpecialTokens: true }), prompt);
});
