import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextTokenizer } from '../../src/model/tokenizer';
import { generateTasks } from '../../src/eval/generators';
import { TASK_KINDS, TaskFileError, isCorrect, readTasks, writeTasks } from '../../src/eval/tasks';

const tokenizer = TextTokenizer.load('../shared/models/stories260K/hf');
const countTokens = (t: string) => tokenizer.encode(t, { addSpecialTokens: false }).length;

test('every kind at 400 and 2048 tokens: near the target, answer in the context, deterministic', () => {
  const make = () => generateTasks({ kinds: TASK_KINDS, lengths: [400, 2048], count: 3, seed: 7, countTokens });
  const tasks = make();
  assert.equal(tasks.length, TASK_KINDS.length * 2 * 3);
  assert.deepEqual(make(), tasks);
  assert.notDeepEqual(generateTasks({ kinds: ['passkey'], lengths: [400], count: 1, seed: 8, countTokens })[0].answer,
    generateTasks({ kinds: ['passkey'], lengths: [400], count: 1, seed: 7, countTokens })[0].answer);
  for (const t of tasks) {
    const n = countTokens(t.context);
    assert.ok(n <= t.targetTokens * 1.05 || (t.kind === 'where-defined' && t.targetTokens < 1000), `${t.id}: ${n} tokens for ${t.targetTokens}`);
    assert.ok(n >= t.targetTokens * 0.75, `${t.id}: only ${n} tokens for ${t.targetTokens}`);
    assert.ok(t.depth >= 0 && t.depth <= 1);
    if (t.kind === 'where-defined') {
      const name = /`(\w+)`/.exec(t.question)![1];
      const file = t.context.split('### FILE: ').find((f) => f.includes(`def ${name}(`))!;
      assert.equal(file.split('\n')[0], t.answer, `${t.id}: ${name} is defined in another file`);
    } else {
      assert.ok(t.context.includes(t.answer), `${t.id}: the answer is not in the context`);
    }
  }
  const passkeys = tasks.filter((t) => t.kind === 'passkey' && t.targetTokens === 2048);
  assert.deepEqual(passkeys.map((t) => t.depth), [0, 0.5, 1]);
  assert.ok(passkeys[0].context.indexOf(passkeys[0].answer) < passkeys[2].context.indexOf(passkeys[2].answer));
});

test('variable tracking: following the chain from the asked variable leads to the answer', () => {
  for (const t of generateTasks({ kinds: ['variable-tracking'], lengths: [600], count: 4, seed: 3, countTokens })) {
    let name = /VAR (\w+)\?/.exec(t.question)![1];
    for (let hop = 0; hop < 10; hop++) {
      const m = new RegExp(`VAR ${name} = (VAR (\\w+)|(\\d+))\\.`).exec(t.context)!;
      if (m[3]) { assert.equal(m[3], t.answer); break; }
      name = m[2];
    }
  }
});

test('task files: round trip, and errors that name the file and line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-'));
  const tasks = generateTasks({ kinds: ['kv-retrieval'], lengths: [300], count: 2, seed: 1, countTokens });
  writeTasks(join(dir, 't.jsonl'), tasks);
  assert.deepEqual(readTasks(join(dir, 't.jsonl')), tasks);
  writeFileSync(join(dir, 'bad.jsonl'), JSON.stringify(tasks[0]) + '\n{oops\n');
  assert.throws(() => readTasks(join(dir, 'bad.jsonl')), (e: unknown) => e instanceof TaskFileError && /bad\.jsonl:2: not JSON/.test(e.message));
  writeFileSync(join(dir, 'kind.jsonl'), JSON.stringify({ ...tasks[0], kind: 'trivia' }) + '\n');
  assert.throws(() => readTasks(join(dir, 'kind.jsonl')), /kind\.jsonl:1: "kind" must be one of passkey/);
  writeFileSync(join(dir, 'empty.jsonl'), '\n');
  assert.throws(() => readTasks(join(dir, 'empty.jsonl')), /holds no tasks/);
  assert.throws(() => readTasks(join(dir, 'missing.jsonl')), /missing\.jsonl: cannot read/);
});

test('answers match by containment, ignoring case and spacing', () => {
  assert.ok(isCorrect(' The pass key is 71432.', '71432'));
  assert.ok(isCorrect('src/Core/A.py', 'src/core/a.py'));
  assert.ok(!isCorrect('7143', '71432'));
});
