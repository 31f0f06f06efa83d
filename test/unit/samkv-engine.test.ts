// kvAssembly 'segments' through the real engine process and the ask pipeline (stories260K, a small
// generated repository): with every moved token recomputed the answer is a prefill's; after an edit
// only the edited file's segment is prefilled again; a new file order reuses every segment; an
// assembled sequence is never reused as a prefill's KV, nor saved to the disk cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineClient, EngineError } from '../../src/engine/client';
import { recomputePositions } from '../../src/engine/kvSegments';
import { ask, type AskOptions } from '../../src/qa';
import { privateEngines, type PrivateEngines } from './engine-harness';

let engines: PrivateEngines;
let work: string;
const QUESTION = 'What did Lily have?';
const FIXED: Partial<AskOptions> = { recentFiles: [], maxNewTokens: 12 };

before(async () => {
  engines = await privateEngines('rl-samkv-');
  work = engines.work;
});
after(() => engines.dispose());

const engine = (): Promise<EngineClient> => engines.engine();

function makeRepo(name: string): string {
  const repo = join(work, name);
  mkdirSync(join(repo, 'src'), { recursive: true });
  writeFileSync(join(repo, 'README.md'), '# Garden\nStories about Lily and Tom.\n');
  writeFileSync(join(repo, 'src', 'ball.txt'), 'Lily had a red ball.\nShe played in the park with her mom.\n');
  writeFileSync(join(repo, 'src', 'cat.txt'), 'The cat sat on the mat.\nIt was warm and happy.\n');
  writeFileSync(join(repo, 'src', 'tree.txt'), 'A tall tree grew by the house.\nBirds sang in it every day.\n');
  return repo;
}

test('segments with every moved token recomputed answer as a prefill does; what was prefilled is counted', async () => {
  const repo = makeRepo('full');
  const prefix = await ask(QUESTION, repo, { client: await engine(), ...FIXED });
  const segments = await ask(QUESTION, repo, { client: await engine(), ...FIXED, kvAssembly: 'segments', segmentRecompute: 1 });
  assert.deepEqual(segments.ids, prefix.ids);
  const files = segments.context.files;
  assert.deepEqual(segments.segments, { reused: 0, prefilled: files.length, recomputed: segments.tokens.repository - files[0].tokens });
  // The head, every file once, the moved files again, the question's probe (policy 'query'), the question.
  assert.equal(segments.tokens.prefilled, segments.tokens.prompt + segments.segments!.recomputed + segments.tokens.question);
});

test('after an edit only the edited file is prefilled again; a new order reuses every file', async () => {
  const client = await engine();
  const repo = makeRepo('edit');
  const first = await ask(QUESTION, repo, { client, ...FIXED, kvAssembly: 'segments' });
  assert.equal(first.segments?.prefilled, 4);

  writeFileSync(join(repo, 'src', 'ball.txt'), 'Lily had a blue ball.\nShe played in the park with her mom.\n');
  const edited = await ask(QUESTION, repo, { client, ...FIXED, kvAssembly: 'segments' });
  const paths = edited.context.files.map((f) => f.path);
  assert.deepEqual(paths, ['README.md', 'src/ball.txt', 'src/cat.txt', 'src/tree.txt']);
  // Kept up to ball.txt; ball.txt prefilled again, cat.txt and tree.txt taken from the store.
  assert.deepEqual({ reused: edited.segments?.reused, prefilled: edited.segments?.prefilled }, { reused: 2, prefilled: 1 });
  const ball = edited.context.files[1];
  assert.equal(edited.tokens.prefilled, ball.tokens + edited.segments!.recomputed + 2 * edited.tokens.question);

  // cat.txt recently edited: it moves to the end; nothing new to prefill but the recomputed starts and the question.
  const reordered = await ask(QUESTION, repo, { client, ...FIXED, kvAssembly: 'segments', recentFiles: ['src/cat.txt'] });
  assert.deepEqual(reordered.context.files.map((f) => f.path), ['README.md', 'src/ball.txt', 'src/tree.txt', 'src/cat.txt']);
  assert.equal(reordered.segments?.prefilled, 0);
  assert.equal(reordered.tokens.prefilled, reordered.segments!.recomputed + 2 * reordered.tokens.question);
});

test('assembled KV is not reused by a prefix-mode question nor saved to the disk cache', async () => {
  const client = await engine();
  const repo = makeRepo('mixed');
  const cache = { dir: join(work, 'cache') };
  const assembled = await ask(QUESTION, repo, { client, ...FIXED, kvAssembly: 'segments', segmentRecompute: 0, cache });
  assert.equal(assembled.cache?.savedTokens, 0);
  assert.ok(assembled.cache?.notes.some((n) => /assembled from KV segments/.test(n)), JSON.stringify(assembled.cache));
  const prefix = await ask(QUESTION, repo, { client, ...FIXED, cache });
  const fresh = await ask(QUESTION, repo, { client: await engine(), ...FIXED });
  assert.deepEqual(prefix.ids, fresh.ids);
  // Only the head and the first file (prefilled where they sit) were reused; the rest was prefilled,
  // so the whole prefix is a prefill's again: saved to disk, and reused by the next question.
  const firstFileEnd = prefix.tokens.head + prefix.context.files[0].tokens;
  assert.equal(prefix.tokens.prefilled, prefix.tokens.prompt - firstFileEnd);
  assert.equal(prefix.cache?.savedTokens, prefix.tokens.head + prefix.tokens.repository);
  const again = await ask('Where is the cat?', repo, { client, ...FIXED });
  assert.ok(again.tokens.prefilled <= again.tokens.question, `prefilled ${again.tokens.prefilled}`);
});

test('bad layouts are refused with the field named', async () => {
  const client = await engine();
  const run = (starts: number[], end: number) =>
    client.generate({ prompt: { ids: [1, 5, 6, 7, 8, 9] }, maxNewTokens: 1, kvAssembly: { mode: 'segments', starts, end, recompute: 0.5 } }).result;
  await assert.rejects(run([3, 2], 4), (e: unknown) => e instanceof EngineError && /ascending/.test(e.message));
  await assert.rejects(run([1, 3], 6), (e: unknown) => e instanceof EngineError && /last token/.test(e.message));
  await assert.rejects(run([], 3), (e: unknown) => e instanceof EngineError && /empty/.test(e.message));
});

test('recomputePositions: the first tokens, evenly spread ones, or the blocks the question attends to most', () => {
  const layout = { starts: [2, 10, 14], end: 24 };
  assert.deepEqual(recomputePositions(layout, 0), []);
  assert.deepEqual(recomputePositions(layout, 0.25), [10, 14, 15, 16]);
  assert.deepEqual(recomputePositions(layout, 0.5, 'spread'), [10, 12, 14, 16, 18, 20, 22]);
  assert.deepEqual(recomputePositions(layout, 1).length, 4 + 10);
  assert.throws(() => recomputePositions(layout, 1.5), /\[0, 1\]/);
  // 'query': 4 tokens in all (1 + 3), as blocks of 4 by mass, the segment before `from` left out.
  const mass = new Float32Array(24);
  mass[20] = 5; // block 18..21 of the last segment
  mass[11] = 1; // block 10..13 of the second
  assert.deepEqual(recomputePositions(layout, 0.25, 'query', { mass, block: 4 }), [18, 19, 20, 21]);
  assert.deepEqual(recomputePositions(layout, 0.5, 'query', { mass, block: 4 }), [10, 11, 12, 18, 19, 20, 21]);
  assert.deepEqual(recomputePositions(layout, 0.25, 'query', { mass, block: 4 }, 14), [18, 19, 20]);
  assert.throws(() => recomputePositions(layout, 0.25, 'query'), /attention mass/);
});
