// The bundled CLI (dist/cli.js) as a user runs it.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundles, CLI, STORIES } from './engine-harness';

const golden = JSON.parse(readFileSync('../shared/models/stories260K/golden-transformers.json', 'utf8')) as {
  prompt: string; input_ids: number[]; greedy_ids: number[]; greedy_text: string;
};

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let repo: string;
before(async () => {
  await buildBundles();
  repo = mkdtempSync(join(tmpdir(), 'rl-cli-repo-'));
  writeFileSync(join(repo, 'README.md'), '# Tiny\nA story about Lily and her red ball.\n');
  writeFileSync(join(repo, 'main.py'), 'def main():\n    print("Lily")\n');
  writeFileSync(join(repo, 'data.bin'), Buffer.from([0, 1, 2, 3, 0, 0, 255]));
});

test('generate: greedy continuation on stdout equals transformers\'', () => {
  const r = cli('generate', '--model', STORIES, '--prompt', golden.prompt, '--max-tokens', '64', '--no-eos');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(golden.prompt + r.stdout.replace(/\n$/, ''), golden.greedy_text);
  assert.match(r.stderr, /64 tokens \(length\)/);
});

test('generate --json: prompt ids, ids, text and counts', () => {
  const r = cli('generate', '--model', STORIES, '--prompt', golden.prompt, '--max-tokens=16', '--no-eos', '--json', '--temperature', '0', '--seed', '3');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.promptIds, golden.input_ids);
  assert.deepEqual(out.ids, golden.greedy_ids.slice(5, 21));
  assert.equal(out.generatedTokens, 16);
  assert.equal(out.finishReason, 'length');
  assert.equal(out.model.contextTokens, 512);
});

test('generate --prefill-precision half on the CPU backend: accepted and ignored (the same greedy ids)', () => {
  const r = cli('generate', '--model', STORIES, '--backend', 'cpu', '--prefill-precision', 'half', '--prompt', golden.prompt, '--max-tokens', '16', '--no-eos', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).ids, golden.greedy_ids.slice(5, 21));
});

test('generate --chat: a model without a chat template gets the plain prompt', () => {
  const r = cli('generate', '--model', STORIES, '--prompt', golden.prompt, '--max-tokens', '8', '--no-eos', '--chat', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).promptIds, golden.input_ids);
});

test('ask: streams an answer about a temporary repository and exits 0; --json lists files and skipped ones', () => {
  const r = cli('ask', '--model', STORIES, '--repo', repo, '--max-tokens', '12', 'What did Lily have?');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.trim().length > 0);
  assert.match(r.stderr, /2 files in context, 1 left out/);
  const j = cli('ask', '--model', STORIES, '--repo', repo, '--max-tokens', '12', '--json', 'What', 'did', 'Lily', 'have?');
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.question, 'What did Lily have?');
  assert.equal(out.tokens.generated, out.ids.length);
  assert.deepEqual(out.files.map((f: { path: string }) => f.path).sort(), ['README.md', 'main.py']);
  assert.deepEqual(out.skipped.map((s: { path: string }) => s.path), ['data.bin']);
  assert.equal(out.manifest.offset, out.tokens.head);
});

test('--help: commands and their options', () => {
  const top = cli('--help');
  assert.equal(top.code, 0);
  assert.match(top.stdout, /generate .*\n.*ask /s);
  const a = cli('ask', '--help');
  assert.equal(a.code, 0);
  assert.match(a.stdout, /--repo DIR/);
  assert.match(a.stdout, /"QUESTION"/);
  assert.match(a.stdout, /--prefill-precision P/);
});

test('bad arguments: one clear line on stderr and exit code 2', () => {
  const cases: [string[], RegExp][] = [
    [[], /^$/],
    [['fly'], /unknown command "fly"/],
    [['generate', '--model', STORIES], /--prompt TEXT is required/],
    [['generate', '--model', STORIES, '--prompt', 'x', '--max-tokens', 'lots'], /--max-tokens must be an integer >= 1, got "lots"/],
    [['generate', '--model', STORIES, '--prompt', 'x', '--top-p', '0'], /--top-p must be a number > 0 and <= 1/],
    [['generate', '--model', STORIES, '--prompt', 'x', '--temperature', '-1'], /--temperature must be a number >= 0/],
    [['generate', '--model', STORIES, '--prompt', 'x', '--frobnicate'], /unknown option --frobnicate/],
    [['generate', '--model', STORIES, '--prompt'], /--prompt needs a value/],
    [['generate', '--model', STORIES, '--prompt', 'x', '--backend', 'tpu'], /--backend must be auto, cpu or cuda/],
    [['generate', '--model', STORIES, '--prompt', 'x', '--prefill-precision', 'bf16'], /--prefill-precision must be float32 or half, got "bf16"/],
    [['ask', '--model', STORIES, '--repo', '.'], /ask needs a QUESTION/],
  ];
  for (const [args, message] of cases) {
    const r = cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    if (args.length) {
      assert.match(r.stderr, message, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
  }
});

test('engine and model errors: one line naming the problem, exit code 1', () => {
  const missing = cli('generate', '--model', join(repo, 'no-model'), '--prompt', 'x');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no-model\/config\.json: the model folder does not exist \[model-missing\]\n$/);
  const tooLong = cli('generate', '--model', STORIES, '--context', '8', '--prompt', 'Once upon a time there was a little girl named Lily');
  assert.equal(tooLong.code, 1);
  assert.match(tooLong.stderr, /context holds 8.*\[prompt-too-long\]/);
  const noRepo = cli('ask', '--model', STORIES, '--repo', join(repo, 'nope'), 'Why?');
  assert.equal(noRepo.code, 1);
  assert.match(noRepo.stderr, /repository folder .*nope cannot be opened/);
});

test('Ctrl-C (SIGINT to the whole process group) cancels the generation cleanly: exit code 130', async () => {
  const child = spawn(process.execPath, [CLI, 'generate', '--model', STORIES, '--prompt', 'Once', '--max-tokens', '500', '--no-eos'], { detached: true });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  process.kill(-child.pid!, 'SIGINT');
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /tokens \(cancelled\)/);
});
