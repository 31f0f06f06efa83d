// The default model: without --model (or with repoLens.modelPath empty) the package's own
// models/repo-lens-code is used. A temporary package folder stands in for the real one, with
// stories260K as its bundled model, so the test never depends on the shipped model being there.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MODEL_SUBDIR, DefaultModelMissingError, bundledModelDir, packageRoot, resolveModelDir } from '../../src/model/defaultModel';
import { ADDON, CLI, ENGINE, STORIES, buildBundles } from './engine-harness';

const golden = JSON.parse(readFileSync('../shared/models/stories260K/golden-transformers.json', 'utf8')) as { prompt: string; input_ids: number[]; greedy_ids: number[] };

/** A package folder laid out as the installed one: package.json, dist/cli.js and dist/engine.js, and the model when asked. */
function fakePackage(withModel: boolean): string {
  const root = mkdtempSync(join(tmpdir(), 'rl-pkg-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'repo-lens', version: '0.0.0' }));
  mkdirSync(join(root, 'dist'));
  cpSync(CLI, join(root, 'dist', 'cli.js'));
  cpSync(ENGINE, join(root, 'dist', 'engine.js'));
  if (withModel) cpSync(STORIES, join(root, DEFAULT_MODEL_SUBDIR), { recursive: true });
  return root;
}

function cli(root: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), ...args], {
    encoding: 'utf8', timeout: 60_000, cwd: tmpdir(), env: { ...process.env, REPO_LENS_ADDON: ADDON },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let withModel: string;
let withoutModel: string;
before(async () => {
  await buildBundles();
  withModel = fakePackage(true);
  withoutModel = fakePackage(false);
});

test('resolution: a configured folder wins; else the bundled one; else an error that says how to configure one', () => {
  assert.equal(resolveModelDir('/models/mine', withoutModel, 'Pass --model DIR.'), '/models/mine');
  assert.equal(resolveModelDir('  ', withModel, 'Pass --model DIR.'), bundledModelDir(withModel));
  assert.equal(resolveModelDir(undefined, withModel, 'Pass --model DIR.'), join(withModel, 'models', 'repo-lens-code'));
  assert.throws(() => resolveModelDir('', withoutModel, 'Pass --model DIR.'), (e: unknown) => e instanceof DefaultModelMissingError &&
    e.message.includes(join(withoutModel, 'models', 'repo-lens-code', 'config.json')) && e.message.endsWith('Pass --model DIR.'));
  // An empty model folder (config.json missing) is no model either.
  const empty = fakePackage(false);
  mkdirSync(join(empty, DEFAULT_MODEL_SUBDIR), { recursive: true });
  assert.throws(() => resolveModelDir('', empty, ''), (e: unknown) => e instanceof DefaultModelMissingError && /bundled default model is missing/.test(e.message));
});

test('the package root is the nearest folder above whose package.json is repo-lens\'s', () => {
  assert.equal(packageRoot(join(withModel, 'dist')), withModel);
  const nested = join(withModel, 'node_modules', 'other');
  mkdirSync(nested, { recursive: true });
  writeFileSync(join(nested, 'package.json'), JSON.stringify({ name: 'other' }));
  assert.equal(packageRoot(nested), withModel);
  assert.equal(packageRoot(join(process.cwd(), 'src', 'model')), process.cwd());
  assert.throws(() => packageRoot(tmpdir()), /no repo-lens package.json above/);
});

test('CLI generate without --model runs the bundled model beside dist/cli.js', () => {
  const r = cli(withModel, 'generate', '--prompt', golden.prompt, '--max-tokens', '16', '--no-eos', '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.model.modelDir, join(withModel, 'models', 'repo-lens-code'));
  assert.deepEqual(out.promptIds, golden.input_ids);
  assert.deepEqual(out.ids, golden.greedy_ids.slice(5, 21));
});

test('CLI without --model and without the bundled model: one line saying to pass --model, exit code 1', () => {
  for (const args of [['generate', '--prompt', 'Hi'], ['ask', '--repo', tmpdir(), 'Why?'], ['eval', '--tasks', join(tmpdir(), 'none.jsonl')]]) {
    const r = cli(withoutModel, ...args);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^repo-lens ${args[0]}: No model is configured and the bundled default model is missing \\(.*config\\.json not found\\)\\. Pass --model DIR`));
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  const t = cli(withoutModel, 'eval-tasks', '--out', join(tmpdir(), 'x.jsonl'));
  assert.equal(t.code, 1);
  assert.match(t.stderr, /bundled default model is missing .* Pass --tokenizer DIR/);
});

test('CLI eval-tasks and eval without --model use the bundled model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rl-eval-default-'));
  const tasks = join(dir, 'tasks.jsonl');
  const g = cli(withModel, 'eval-tasks', '--out', tasks, '--kinds', 'passkey', '--lengths', '200', '--count', '1');
  assert.equal(g.code, 0, g.stderr);
  const e = cli(withModel, 'eval', '--tasks', tasks, '--modes', 'streaming', '--max-tokens', '2', '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout).model, join(withModel, 'models', 'repo-lens-code'));
});
