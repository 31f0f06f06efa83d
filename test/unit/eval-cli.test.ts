// `repo-lens eval` as a user runs it (dist/cli.js): one progress line per task with its time on
// stderr, the table on stdout, and with --out the full JSON and the Markdown table in two files.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, STORIES, buildBundles } from './engine-harness';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let tasks: string;
before(async () => {
  await buildBundles();
  dir = mkdtempSync(join(tmpdir(), 'rl-eval-cli-'));
  tasks = join(dir, 'tasks.jsonl');
  const g = cli('eval-tasks', '--tokenizer', STORIES, '--out', tasks, '--kinds', 'passkey,kv-retrieval', '--lengths', '200,600', '--count', '1');
  assert.equal(g.code, 0, g.stderr);
});

test('eval --out: progress per task on stderr, the table on stdout, FILE.json and FILE.md written', () => {
  const r = cli('eval', '--model', STORIES, '--tasks', tasks, '--modes', 'prhs,streaming', '--budgets', '0.25', '--max-tokens', '3', '--block-size', '16', '--out', join(dir, 'report.json'));
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => /^repo-lens eval: \d+\/4 /.test(l));
  assert.equal(lines.length, 4, r.stderr);
  for (const [i, l] of lines.entries()) assert.match(l, new RegExp(`^repo-lens eval: ${i + 1}/4 \\S+: (\\d+ prompt tokens, prefill \\d+\\.\\d s, decode \\d+\\.\\d s|skipped); (\\d+\\.\\d s|\\d+ min \\d+ s) elapsed$`));
  // The 600-token tasks do not fit stories260K's 512 positions.
  assert.equal(lines.filter((l) => l.includes('skipped;')).length, 2);
  assert.match(r.stderr, /wrote .*report\.json and .*report\.md/);
  assert.match(r.stdout, /^\| mode \| budget \| task \|/);

  const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
  assert.equal(json.model, STORIES);
  assert.equal(json.kvBlockSize, 16);
  assert.equal(json.timings.length, 4);
  assert.equal(json.outcomes.length, 2 * 3);
  assert.match(json.commit ?? '', /^([0-9a-f]{40})?$/);
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  assert.match(md, /^# repo-lens eval\n/);
  assert.match(md, /- tasks: .*tasks\.jsonl \(4 tasks, 2 skipped\)/);
  assert.match(md, /- modes: prhs@0\.25, streaming@0\.25; KV block 16 tokens, context 512, at most 3 new tokens/);
  assert.ok(md.includes(r.stdout.trim()), 'the file\'s table is not the one printed');
});

test('eval --out with a stem: FILE.json and FILE.md beside it', () => {
  const r = cli('eval', '--model', STORIES, '--tasks', tasks, '--modes', 'streaming', '--max-tokens', '2', '--out', join(dir, 'stem'));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'stem.json')) && existsSync(join(dir, 'stem.md')));
});
