// Must-show 1, 2 and 4 of issue 6 through the real engine process (stories260K) and the ask
// pipeline on a small generated repository: what the engine counts as prefilled (prefilledTokens)
// after an unchanged repository, after an edit, and after a restart with the disk cache — and a
// damaged cache folder discarded with a note.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineClient, EngineError } from '../../src/engine/client';
import { ask, type AskOptions, type AskResult } from '../../src/qa';
import { privateEngines, type PrivateEngines } from './engine-harness';

let engines: PrivateEngines;
let work: string;

/** No file counts as recently edited: the prompt order is README, then by folder. */
const FIXED_ORDER: Partial<AskOptions> = { recentFiles: [], maxNewTokens: 8 };

before(async () => {
  engines = await privateEngines('rl-kvreuse-');
  work = engines.work;
});
after(() => engines.dispose());

const engine = (): Promise<EngineClient> => engines.engine();

function makeRepo(name: string): string {
  const repo = join(work, name);
  mkdirSync(join(repo, 'src'), { recursive: true });
  mkdirSync(join(repo, 'lib'), { recursive: true });
  writeFileSync(join(repo, 'README.md'), '# Garden\nStories about Lily and Tom.\n');
  writeFileSync(join(repo, 'lib', 'tom.txt'), 'Tom had a big blue boat.\nHe sailed it on the pond.\n');
  writeFileSync(join(repo, 'src', 'ball.txt'), 'Lily had a red ball.\nShe played in the park.\n');
  writeFileSync(join(repo, 'src', 'cat.txt'), 'The cat sat on the mat.\nIt was warm and happy.\n');
  writeFileSync(join(repo, 'src', 'tree.txt'), 'A tall tree grew by the house.\nBirds sang in it.\n');
  return repo;
}

function startOf(r: AskResult, path: string): number {
  const f = r.context.files.find((x) => x.path === path);
  assert.ok(f, `${path} is in the context`);
  return r.tokens.head + f.startToken;
}

test('1: a second question on an unchanged repository prefills only the question\'s tokens', async () => {
  const client = await engine();
  const repo = makeRepo('unchanged');
  const first = await ask('What did Lily have?', repo, { client, ...FIXED_ORDER });
  assert.equal(first.tokens.prefilled, first.tokens.prompt, 'a new engine prefills everything');
  const second = await ask('Where did Tom sail his boat?', repo, { client, ...FIXED_ORDER });
  assert.equal(second.tokens.head + second.tokens.repository, first.tokens.head + first.tokens.repository);
  assert.ok(second.tokens.prefilled <= second.tokens.question, `prefilled ${second.tokens.prefilled}, question ${second.tokens.question}`);
  assert.ok(second.tokens.prefilled > 0);
});

test('2: after editing one file, at most the tokens from that file to the end of the prompt are prefilled again; the answer equals a fresh engine\'s', async () => {
  const client = await engine();
  const repo = makeRepo('edited');
  const question = 'What did Lily have?';
  const before = await ask(question, repo, { client, ...FIXED_ORDER });
  assert.deepEqual(before.context.files.map((f) => f.path), ['README.md', 'lib/tom.txt', 'src/ball.txt', 'src/cat.txt', 'src/tree.txt']);

  writeFileSync(join(repo, 'src', 'cat.txt'), 'The cat sat on the red mat.\nIt was warm and very happy.\n');
  const after = await ask(question, repo, { client, ...FIXED_ORDER });
  const fromFile = after.tokens.prompt - startOf(after, 'src/cat.txt');
  assert.ok(after.tokens.prefilled <= fromFile, `prefilled ${after.tokens.prefilled}, from the edited file to the end ${fromFile}`);
  assert.ok(after.tokens.prefilled > after.tokens.question, 'the edited file itself was prefilled again');

  // The edited file becomes the most recent one and moves to the end: everything from its old place is prefilled again.
  writeFileSync(join(repo, 'src', 'cat.txt'), 'The cat sat on the green mat.\nIt was warm.\n');
  const moved = await ask(question, repo, { client, ...FIXED_ORDER, recentFiles: ['src/cat.txt'] });
  assert.equal(moved.context.files.at(-1)?.path, 'src/cat.txt');
  const fromOldPlace = moved.tokens.prompt - startOf(after, 'src/cat.txt');
  assert.ok(moved.tokens.prefilled <= fromOldPlace, `prefilled ${moved.tokens.prefilled}, from the file's old place ${fromOldPlace}`);

  const fresh = await engine();
  const check = await ask(question, repo, { client: fresh, ...FIXED_ORDER, recentFiles: ['src/cat.txt'] });
  assert.equal(check.tokens.prefilled, check.tokens.prompt);
  assert.deepEqual(moved.ids, check.ids);
});

test('disk cache: after an engine restart the first question prefills only the question, and answers as a fresh engine does', async () => {
  const repo = makeRepo('restart');
  const cache = { dir: join(work, 'cache-restart') };
  const first = await engine();
  const r1 = await ask('What did Lily have?', repo, { client: first, ...FIXED_ORDER, cache });
  assert.deepEqual(r1.cache, { restoredTokens: 0, savedTokens: r1.tokens.head + r1.tokens.repository, notes: [] });
  const again = await ask('Who had a boat?', repo, { client: first, ...FIXED_ORDER, cache });
  assert.equal(again.cache?.savedTokens, 0, 'the entry already holds this prefix: not written again');
  await first.dispose();

  const second = await engine();
  const r2 = await ask('Where did Tom sail his boat?', repo, { client: second, ...FIXED_ORDER, cache });
  assert.equal(r2.cache?.restoredTokens, r2.tokens.head + r2.tokens.repository);
  assert.equal(r2.tokens.prefilled, r2.tokens.question);
  assert.equal(r2.cache?.savedTokens, 0);

  const plain = await engine();
  const r3 = await ask('Where did Tom sail his boat?', repo, { client: plain, ...FIXED_ORDER });
  assert.equal(r3.tokens.prefilled, r3.tokens.prompt);
  assert.deepEqual(r2.ids, r3.ids);
  assert.equal(r2.answer, r3.answer);
});

test('4: a damaged entry and a file abandoned by a killed writer are discarded with a note; the next start rebuilds the entry', async () => {
  const repo = makeRepo('damaged');
  const dir = join(work, 'cache-damaged');
  const first = await engine();
  await ask('What did Lily have?', repo, { client: first, ...FIXED_ORDER, cache: { dir } });
  await first.dispose();
  const [entry] = readdirSync(dir);
  // Damage one byte in the middle of the KV, and leave a partial file from a writer that was killed.
  const bytes = readFileSync(join(dir, entry));
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  writeFileSync(join(dir, entry), bytes);
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  writeFileSync(join(dir, `${entry}.${dead}.0123abcd.tmp`), bytes.subarray(0, 1000));

  const second = await engine();
  const stderr: string[] = [];
  second.on('stderr', (t: string) => stderr.push(t));
  const r = await ask('What did Lily have?', repo, { client: second, ...FIXED_ORDER, cache: { dir } });
  const notes = r.cache?.notes ?? [];
  assert.ok(notes.some((n) => n.includes(`an incomplete cache file left by process ${dead}`)), notes.join('\n'));
  assert.ok(notes.some((n) => n.startsWith(`discarded ${join(dir, entry)}: checksum mismatch in KV chunk 0`)), notes.join('\n'));
  assert.ok(stderr.join('').includes('checksum mismatch'), 'the engine log says so too');
  assert.equal(r.cache?.restoredTokens, 0);
  assert.equal(r.tokens.prefilled, r.tokens.prompt);
  assert.equal(r.cache?.savedTokens, r.tokens.head + r.tokens.repository);
  assert.deepEqual(readdirSync(dir), [entry]);

  const third = await engine();
  const again = await ask('What did Lily have?', repo, { client: third, ...FIXED_ORDER, cache: { dir } });
  assert.equal(again.cache?.restoredTokens, r.tokens.head + r.tokens.repository);
  assert.deepEqual(again.ids, r.ids);
});

test('the cache cap: a prefix larger than the cap is not saved, and says so; a prefix longer than the prompt is refused', async () => {
  const client = await engine();
  const repo = makeRepo('capped');
  const dir = join(work, 'cache-capped');
  const r = await ask('What did Lily have?', repo, { client, ...FIXED_ORDER, cache: { dir, maxBytes: 1024 } });
  assert.equal(r.cache?.savedTokens, 0);
  assert.match(r.cache?.notes.join('\n') ?? '', /not saved: the prefix's KV takes [\d.]+ MiB, over the cache cap of 0\.0 MiB/);
  await assert.rejects(
    client.generate({ prompt: { ids: [1, 2, 3] }, maxNewTokens: 1, cache: { dir, key: repo, prefixTokens: 4 } }).result,
    (e: unknown) => e instanceof EngineError && e.code === 'bad-request' && /prefixTokens: 4 is more than the prompt's 3 tokens/.test(e.message),
  );
});
