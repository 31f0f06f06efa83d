// The repository text, its ids, the token cache and the budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildContext, TokenCache } from '../../src/context/index';
import { FakeTokenizer, makeRepo, reasonOf } from './context-helpers';

test('text format: a "### FILE: path" line per file, then its text ending in a newline', async () => {
  const repo = makeRepo({ 'README.md': '# Title\n', 'src/a.ts': 'let a = 1;' /* no final newline */ });
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens: 1000 });
    assert.equal(ctx.text, '### FILE: README.md\n# Title\n### FILE: src/a.ts\nlet a = 1;\n');
    assert.deepEqual(ctx.files.map((f) => [f.path, f.lines]), [['README.md', 1], ['src/a.ts', 1]]);
  } finally {
    repo.cleanup();
  }
});

test('ids are the concatenation of each file segment encoded on its own', async () => {
  const repo = makeRepo({ 'README.md': 'read me\nplease\n', 'a/b.ts': 'export function b() {\n  return 2;\n}\n', 'c.py': 'print("é✓")\n' });
  try {
    const tokenizer = new FakeTokenizer();
    const ctx = await buildContext({ root: repo.root, tokenizer, budgetTokens: 10_000, recentFiles: [] });
    const expected: number[] = [];
    for (const f of ctx.files) {
      const segment = segmentOf(ctx.text, f.path);
      const ids = tokenizer.encode(segment);
      assert.deepEqual(ctx.ids.slice(f.startToken, f.startToken + f.tokens), ids, `ids of ${f.path}`);
      expected.push(...ids);
    }
    assert.deepEqual(ctx.ids, expected);
    assert.equal(tokenizer.decode(ctx.ids), ctx.text);
  } finally {
    repo.cleanup();
  }
});

test('token cache: a second build re-tokenizes only the file that changed', async () => {
  const repo = makeRepo({ 'README.md': 'r\n', 'a.ts': 'a\n', 'b.ts': 'b\n', 'c/d.ts': 'd\n' });
  try {
    const tokenizer = new FakeTokenizer();
    const first = await buildContext({ root: repo.root, tokenizer, budgetTokens: 10_000, recentFiles: [] });
    assert.equal(first.files.length, 4);
    const afterFirst = tokenizer.encoded.length;
    assert.equal(afterFirst, 5, 'four segments and the empty header, each encoded once');

    const unchanged = await buildContext({ root: repo.root, tokenizer, budgetTokens: 10_000, recentFiles: [] });
    assert.equal(tokenizer.encoded.length, afterFirst, 'nothing encoded again');
    assert.deepEqual(unchanged.ids, first.ids);

    repo.write('b.ts', 'b changed\n');
    const edited = await buildContext({ root: repo.root, tokenizer, budgetTokens: 10_000, recentFiles: [] });
    assert.deepEqual(tokenizer.encoded.slice(afterFirst), ['### FILE: b.ts\nb changed\n']);
    assert.notEqual(edited.files.find((f) => f.path === 'b.ts')!.hash, first.files.find((f) => f.path === 'b.ts')!.hash);
    assert.equal(edited.files.find((f) => f.path === 'a.ts')!.hash, first.files.find((f) => f.path === 'a.ts')!.hash);
  } finally {
    repo.cleanup();
  }
});

test('token cache: least recently used entries are dropped beyond its size', () => {
  const tokenizer = new FakeTokenizer();
  const cache = new TokenCache(10);
  cache.encode(tokenizer, 'aaabbbccc'); // 3 tokens
  cache.encode(tokenizer, 'dddeeefff'); // 3
  cache.encode(tokenizer, 'aaabbbccc'); // hit: now most recent
  cache.encode(tokenizer, 'ggghhhiiijjj'); // 4: 10 held, fits
  assert.equal(cache.size, 3);
  cache.encode(tokenizer, 'kkk'); // 11 > 10: the least recent (dddeeefff) goes
  assert.equal(cache.size, 3);
  const before = tokenizer.encoded.length;
  cache.encode(tokenizer, 'aaabbbccc');
  assert.equal(tokenizer.encoded.length, before, 'still cached');
  cache.encode(tokenizer, 'dddeeefff');
  assert.equal(tokenizer.encoded.length, before + 1, 'was evicted');
  assert.equal(cache.hits, 2);
});

test('budget: files that do not fit are left out as over budget; the ids never exceed the budget', async () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 20; i++) files[`f${String(i).padStart(2, '0')}.ts`] = `line ${i}\n`.repeat(i + 1);
  const repo = makeRepo(files);
  try {
    for (const budget of [0, 5, 37, 100, 400]) {
      const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens: budget, recentFiles: [] });
      assert.ok(ctx.ids.length <= budget, `budget ${budget}: ${ctx.ids.length} tokens`);
      assert.equal(ctx.files.length + ctx.skipped.length, 20, 'every file is either in or reported');
      for (const s of ctx.skipped) assert.match(s.reason, /^over budget/);
      // First fit in prompt order: a skipped file is larger than what was left when it was offered.
      for (const s of ctx.skipped) {
        const m = /\((\d+) tokens, (\d+) left/.exec(s.reason);
        if (m) assert.ok(Number(m[1]) > Number(m[2]));
      }
    }
    const all = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens: 100_000 });
    const exact = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens: all.ids.length });
    assert.equal(exact.skipped.length, 0, 'a budget of exactly the total fits everything');
    const oneShort = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens: all.ids.length - 1 });
    assert.ok(oneShort.skipped.length >= 1);
    assert.match(reasonOf(oneShort.skipped, oneShort.skipped[0].path)!, /^over budget \(\d+ tokens, \d+ left of \d+\)$/);
  } finally {
    repo.cleanup();
  }
});

test('budget: after 256 files in a row did not fit, the rest are left out unread', async () => {
  const files: Record<string, string> = { 'README.md': 'r\n' };
  for (let i = 0; i < 300; i++) files[`big${String(i).padStart(3, '0')}.ts`] = 'x'.repeat(200) + '\n';
  const repo = makeRepo(files);
  try {
    const tokenizer = new FakeTokenizer();
    const ctx = await buildContext({ root: repo.root, tokenizer, budgetTokens: 40, recentFiles: [] });
    assert.deepEqual(ctx.files.map((f) => f.path), ['README.md']);
    const tried = ctx.skipped.filter((s) => /^over budget \(\d+ tokens/.test(s.reason));
    const untried = ctx.skipped.filter((s) => s.reason === 'over budget (not tried: the token budget is full)');
    assert.equal(tried.length, 256);
    assert.equal(untried.length, 44);
    assert.equal(tokenizer.encoded.length, 1 + 1 + 256, 'empty header, README, 256 tried files');
  } finally {
    repo.cleanup();
  }
});

test('a file the tokenizer rejects is reported, the rest is built', async () => {
  const repo = makeRepo({ 'a.ts': 'fine\n', 'b.ts': 'BOOM\n' });
  try {
    const fake = new FakeTokenizer();
    const tokenizer = {
      encode: (text: string) => {
        if (text.includes('BOOM')) throw new Error('unsupported text');
        return fake.encode(text);
      },
      decode: (ids: number[]) => fake.decode(ids),
    };
    const ctx = await buildContext({ root: repo.root, tokenizer, budgetTokens: 1000 });
    assert.deepEqual(ctx.files.map((f) => f.path), ['a.ts']);
    assert.equal(reasonOf(ctx.skipped, 'b.ts'), 'could not be tokenized: unsupported text');
  } finally {
    repo.cleanup();
  }
});

function segmentOf(text: string, path: string): string {
  const start = text.indexOf(`### FILE: ${path}\n`);
  const next = text.indexOf('### FILE: ', start + 1);
  return text.slice(start, next < 0 ? text.length : next);
}
