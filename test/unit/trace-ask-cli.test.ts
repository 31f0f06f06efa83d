// `repo-lens ask --trace FILE` through the bundled CLI and the real engine: a valid trace whose
// blocks map to the repository's files and lines, for sparse and for dense attention.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTrace } from '../../src/trace/file';
import { buildBundles, CLI, STORIES } from './engine-harness';

const dir = mkdtempSync(join(tmpdir(), 'ask-trace-'));
const repo = join(dir, 'repo');
before(async () => {
  await buildBundles();
  mkdirSync(join(repo, 'src'), { recursive: true });
  writeFileSync(join(repo, 'src', 'math.py'), 'def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n');
  writeFileSync(join(repo, 'README.md'), '# Demo\n\nA tiny repository.\n');
});

function ask(...args: string[]) {
  return spawnSync(process.execPath, [CLI, 'ask', '--model', STORIES, '--repo', repo, '--max-tokens', '8', ...args, 'Where is add defined?'], { encoding: 'utf8' });
}

test('PrHS: the trace validates, has one step per token, and its manifest names the files', () => {
  const file = join(dir, 'prhs.json');
  const r = ask('--attention', 'prhs', '--budget', '0.3', '--attention-settings', '{"audit":true,"window":32}', '--trace', file);
  assert.equal(r.status, 0, r.stderr);
  const t = readTrace(file);
  assert.equal(t.attention.mode, 'prhs');
  assert.equal(t.attention.budget, 0.3);
  assert.equal(t.steps.length, 8);
  const sources = new Set(t.manifest.flatMap((m) => m.spans.map((s) => s.source)));
  assert.ok(sources.has('src/math.py') && sources.has('README.md'), [...sources].join(', '));
  for (const s of t.manifest.flatMap((m) => m.spans).filter((x) => x.source === 'src/math.py')) assert.ok(s.startLine >= 1 && s.endLine <= 6);
  assert.ok(t.summary.effectiveBudget < 1);
});

test('dense: the trace says every block was read', () => {
  const file = join(dir, 'dense.json');
  assert.equal(ask('--trace', file).status, 0);
  const t = readTrace(file);
  assert.equal(t.attention.mode, 'dense');
  assert.ok(t.steps.every((s) => s.layers.every((l) => l.heads.every((h) => h.source === 'dense' && h.blocks[0][1] === s.contextBlocks))));
});

test('bad attention options are usage errors', () => {
  let r = ask('--attention', 'fast');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /attention\.mode must be one of dense, prhs/);
  r = ask('--attention-settings', '{"tau":');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--attention-settings is not JSON/);
});
