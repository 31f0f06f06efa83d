// The block manifest: every KV block mapped to its file(s), header tokens and line ranges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { buildContext, type BlockManifest, type ContextTokenizer, type RepositoryContext } from '../../src/context/index';
import { FakeTokenizer, makeRepo } from './context-helpers';

const files = {
  'README.md': '# Demo\n\nA small repository.\n',
  'src/main.ts': 'import { add } from "./math";\n\nconsole.log(add(1, 2));\n',
  'src/math.ts': 'export function add(a: number, b: number): number {\n  return a + b;\n}\n\n\nexport const zero = 0;',
  'src/empty-lines.txt': '\n\n\n',
  'docs/notes.md': 'Ünïcödé ✓ lines\nsecond\nthird\n',
};

/** Structural checks that hold for any tokenizer. */
function checkStructure(ctx: RepositoryContext, m: BlockManifest) {
  assert.equal(m.version, 1);
  assert.equal(m.totalTokens, ctx.ids.length);
  assert.deepEqual(m.files.map((f) => f.path), ctx.files.map((f) => f.path));
  // Blocks are consecutive KV blocks of the prompt and tile the repository tokens exactly.
  let next = 0;
  for (const [i, block] of m.blocks.entries()) {
    assert.equal(block.index, m.blocks[0].index + i);
    assert.equal(block.start, Math.max(0, block.index * m.blockSize - m.offset));
    assert.equal(block.end, Math.min(m.totalTokens, (block.index + 1) * m.blockSize - m.offset));
    assert.equal(block.start, next);
    assert.ok(block.pieces.length >= 1, `block ${block.index} maps to a file`);
    let pieceNext = block.start;
    for (const p of block.pieces) {
      assert.equal(p.start, pieceNext, 'pieces are contiguous');
      const file = m.files[p.file];
      assert.ok(p.start >= file.start && p.end <= file.end, 'a piece lies within its file');
      assert.ok(p.lines === null || (p.lines[0] >= 1 && p.lines[0] <= p.lines[1] && p.lines[1] <= file.lines), `lines ${p.lines} within 1..${file.lines}`);
      assert.ok(p.lines !== null || p.headerTokens === p.end - p.start, 'a piece without lines holds only header tokens');
      pieceNext = p.end;
    }
    assert.equal(pieceNext, block.end, 'pieces cover the block');
    next = block.end;
  }
  assert.equal(next, m.totalTokens, 'blocks cover every token');
  // Concatenating the pieces' token ranges reproduces the ids.
  const rebuilt = m.blocks.flatMap((b) => b.pieces.flatMap((p) => ctx.ids.slice(p.start, p.end)));
  assert.deepEqual(rebuilt, ctx.ids);
  // The manifest is plain JSON.
  assert.deepEqual(JSON.parse(JSON.stringify(m)), m);
}

/**
 * Exact expectations from the decoded text: the segment line (0 = header) of each token's first
 * and last character, found by decoding the file's tokens up to it.
 */
function checkLines(ctx: RepositoryContext, m: BlockManifest, decode: (ids: number[]) => string) {
  for (const block of m.blocks) {
    for (const p of block.pieces) {
      const file = m.files[p.file];
      const fileIds = ctx.ids.slice(file.start, file.end);
      let header = 0;
      let first = Infinity;
      let last = -Infinity;
      for (let t = p.start - file.start; t < p.end - file.start; t++) {
        const before = decode(fileIds.slice(0, t));
        const through = decode(fileIds.slice(0, t + 1));
        const startLine = countNewlines(before);
        const endLine = countNewlines(through.endsWith('\n') ? through.slice(0, -1) : through);
        if (startLine === 0) header++;
        if (endLine >= 1) {
          first = Math.min(first, Math.max(1, startLine));
          last = Math.max(last, endLine);
        }
      }
      assert.equal(p.headerTokens, header, `header tokens of ${file.path} [${p.start}, ${p.end})`);
      assert.deepEqual(p.lines, first === Infinity ? null : [first, last], `lines of ${file.path} [${p.start}, ${p.end})`);
    }
  }
}

function countNewlines(s: string): number {
  return s.split('\n').length - 1;
}

test('manifest with the fake tokenizer: structure, exact lines and header tokens, several block sizes', async () => {
  const repo = makeRepo(files);
  try {
    for (const blockSize of [1, 4, 7, 32]) {
      const tokenizer = new FakeTokenizer();
      const ctx = await buildContext({ root: repo.root, tokenizer, budgetTokens: 10_000, blockSize, recentFiles: [] });
      assert.equal(ctx.files.length, 5);
      checkStructure(ctx, ctx.manifest);
      checkLines(ctx, ctx.manifest, (ids) => tokenizer.decode(ids));
      if (blockSize === 32) assert.ok(ctx.manifest.blocks.some((b) => b.pieces.length > 1), 'some block spans a file boundary');
    }
  } finally {
    repo.cleanup();
  }
});

test('manifest offset: blocks are the prompt KV blocks when tokens come before the repository', async () => {
  const repo = makeRepo(files);
  try {
    const tokenizer = new FakeTokenizer();
    const ctx = await buildContext({ root: repo.root, tokenizer, budgetTokens: 10_000, blockSize: 8, offset: 5, recentFiles: [] });
    const m = ctx.manifest;
    assert.equal(m.offset, 5);
    assert.deepEqual([m.blocks[0].index, m.blocks[0].start, m.blocks[0].end], [0, 0, 3], 'block 0 holds prompt positions 0..7: 5 prefix tokens, then 3 of ours');
    assert.deepEqual([m.blocks[1].index, m.blocks[1].start, m.blocks[1].end], [1, 3, 11]);
    checkStructure(ctx, m);
    checkLines(ctx, m, (ids) => tokenizer.decode(ids));
    const aligned = await buildContext({ root: repo.root, tokenizer, budgetTokens: 10_000, blockSize: 8, offset: 16, recentFiles: [] });
    assert.deepEqual([aligned.manifest.blocks[0].index, aligned.manifest.blocks[0].start], [2, 0]);
  } finally {
    repo.cleanup();
  }
});

test('manifest of an empty context has no blocks', async () => {
  const repo = makeRepo({ 'bin.png': 'x' });
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer: new FakeTokenizer(), budgetTokens: 100 });
    assert.deepEqual(ctx.manifest, { version: 1, blockSize: 32, offset: 0, totalTokens: 0, files: [], blocks: [] });
    assert.equal(ctx.text, '');
    assert.deepEqual(ctx.ids, []);
  } finally {
    repo.cleanup();
  }
});

test('real stories260K tokenizer: ids per file, decoded text, manifest lines exact', async () => {
  const json = JSON.parse(readFileSync('../shared/models/stories260K/hf/tokenizer.json', 'utf8'));
  const config = JSON.parse(readFileSync('../shared/models/stories260K/hf/tokenizer_config.json', 'utf8'));
  const hf = new Tokenizer(json, config);
  const tokenizer: ContextTokenizer = {
    encode: (text) => hf.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => (ids.length === 0 ? '' : hf.decode(ids, { skip_special_tokens: false })),
  };
  const repo = makeRepo(files);
  try {
    const ctx = await buildContext({ root: repo.root, tokenizer, budgetTokens: 100_000, blockSize: 16, offset: 1, recentFiles: [] });
    assert.equal(ctx.files.length, 5);
    for (const f of ctx.files) {
      const ids = ctx.ids.slice(f.startToken, f.startToken + f.tokens);
      const segment = ctx.text.slice(ctx.text.indexOf(`### FILE: ${f.path}\n`)).split(/(?=### FILE: )/)[0];
      assert.deepEqual(ids, tokenizer.encode(segment), `${f.path}: ids are the segment's own encoding`);
      assert.equal(tokenizer.decode(ids), segment, `${f.path}: decodes back to its text`);
    }
    checkStructure(ctx, ctx.manifest);
    checkLines(ctx, ctx.manifest, tokenizer.decode);
    const last = ctx.manifest.blocks.at(-1)!.pieces.at(-1)!;
    assert.equal(last.lines![1], ctx.manifest.files.at(-1)!.lines, 'the last block ends on the last line of the last file');
  } finally {
    repo.cleanup();
  }
});
