// `repo-lens eval-tasks` and `repo-lens eval` end to end on stories260K (accuracy is ~0 for this
// tiny story model; the harness, the metrics and the refusals are what is checked).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STORIES_DIR } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'eval-'));
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('generate tasks, run them per mode and budget, report every metric', () => {
  const tasks = join(dir, 'tasks.jsonl');
  let r = cli('eval-tasks', '--tokenizer', STORIES_DIR, '--out', tasks, '--lengths', '300,2048', '--count', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(tasks, 'utf8').trim().split('\n').length, 8);
  const out = join(dir, 'report.json');
  r = cli('eval', '--model', STORIES_DIR, '--tasks', tasks, '--modes', 'prhs,quest', '--budgets', '0.25,0.5', '--block-size', '16',
    '--max-tokens', '8', '--attention', '{"window":32}', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\| mode \| budget \| task \| length \|/);
  // The 2048-token tasks do not fit stories260K's 512 positions: skipped with the reason.
  assert.equal((r.stderr.match(/skipped .*-2048-0: \d+ prompt tokens \+ 8 new exceed the context of 512/g) ?? []).length, 4);
  const report = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(report.rows.length, 4 * (1 + 2 * 2)); // 4 kinds x (dense + 2 modes x 2 budgets)
  for (const row of report.rows) {
    assert.ok(row.accuracy >= 0 && row.accuracy <= 1);
    assert.ok(row.agreement >= 0 && row.agreement <= 1);
    if (row.mode === 'dense-reference') { assert.equal(row.agreement, 1); continue; }
    assert.ok(row.effectiveBudget > 0 && row.effectiveBudget < 1, `${row.mode} ${row.budget}: budget ${row.effectiveBudget}`);
    assert.ok(row.meanDelta >= 0 && row.maxDelta <= 1);
    if (row.mode === 'quest') assert.equal(row.scoringPassesPerToken, 20);
    if (row.mode === 'prhs') assert.ok(row.scoringPassesPerToken < 20);
  }
  const quest = (b: number) => report.rows.filter((x: { mode: string; budget: number }) => x.mode === 'quest' && x.budget === b);
  const mean = (xs: { effectiveBudget: number }[]) => xs.reduce((s, x) => s + x.effectiveBudget, 0) / xs.length;
  assert.ok(mean(quest(0.5)) > mean(quest(0.25)));
});

test('bad eval arguments are usage errors naming the option', () => {
  let r = cli('eval', '--model', STORIES_DIR, '--tasks', join(dir, 'none.jsonl'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /none\.jsonl: cannot read/);
  r = cli('eval-tasks', '--tokenizer', STORIES_DIR, '--out', join(dir, 'x.jsonl'), '--kinds', 'trivia');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--kinds: unknown kind "trivia"/);
  const tasks = join(dir, 'one.jsonl');
  assert.equal(cli('eval-tasks', '--tokenizer', STORIES_DIR, '--out', tasks, '--lengths', '100', '--count', '1', '--kinds', 'passkey').code, 0);
  r = cli('eval', '--model', STORIES_DIR, '--tasks', tasks, '--modes', 'sparse');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--modes: unknown mode "sparse"/);
  r = cli('eval', '--model', STORIES_DIR, '--tasks', tasks, '--attention', '{"tau": 2}');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--attention: attention\.tau must be in \[-1, 1\]/);
});
