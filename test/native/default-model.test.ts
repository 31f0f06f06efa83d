// The shipped default model (models/repo-lens-code, trained by tools/train) against transformers:
// goldens from tools/train/evaluate.py (fp32 on the CPU) for two held-out prompts of about 2K tokens,
// one in the eval form (key-value retrieval) and one in the ask form (a repository question); and the
// README's first command through the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readModelSpec } from '../../src/model/loader';
import { FIXTURES, argmax, loadAddon, maxAbsDiff, readF32, readJson } from './helpers';

const MODEL_DIR = join('models', 'repo-lens-code');
const GOLDEN_DIR = join(FIXTURES, 'reference', 'repo-lens-code');

interface Golden { task: string; ids: number[]; prompt_tokens: number; positions: number[]; logits_file: string; logits_shape: [number, number] }

const addon = loadAddon();
const goldens = readJson<{ goldens: Golden[] }>(join(GOLDEN_DIR, 'golden.json')).goldens;

for (const g of goldens) {
  test(`default model, ${g.task}: greedy ids identical to transformers, logits within 1e-3 at ${g.positions.length} positions`, () => {
    const [rows, vocab] = g.logits_shape;
    const expected = readF32(join(GOLDEN_DIR, g.logits_file));
    assert.equal(expected.length, rows * vocab);
    const model = addon.loadModel(readModelSpec(MODEL_DIR, { kvBlockSize: 32, threads: 2 }));
    try {
      // Prefill the prompt, then generate token by token as the engine does.
      const seq = model.newSequence();
      const prompt = g.ids.slice(0, g.prompt_tokens);
      const all = model.forward(seq, Int32Array.from(prompt), 'all');                    // [prompt, vocab]
      const generated: number[] = [];
      let last = all.subarray((prompt.length - 1) * vocab, prompt.length * vocab);
      const decodeLogits: Float32Array[] = [];
      for (let i = prompt.length; i < g.ids.length; i++) {
        const next = argmax(last);
        generated.push(next);
        last = model.forward(seq, Int32Array.of(next), 'last');                            // [vocab]
        decodeLogits.push(last);
      }
      assert.deepEqual(generated, g.ids.slice(g.prompt_tokens));

      let worst = 0;
      g.positions.forEach((pos, row) => {
        const want = expected.subarray(row * vocab, (row + 1) * vocab);
        const got = pos < prompt.length ? all.subarray(pos * vocab, (pos + 1) * vocab) : decodeLogits[pos - prompt.length];
        worst = Math.max(worst, maxAbsDiff(got, want));
      });
      assert.ok(worst <= 1e-3, `max |dlogit| ${worst}`);
    } finally {
      model.dispose();
    }
  });
}

// The README's first command, as a user runs it: the shipped weights must answer it from the repository
// (the value is read from the source, so the test follows the code). Weights that lost this were not shipped.
test('the README\'s first command answers the value of HASH_BYTES in src/cache', () => {
  const source = readFileSync(join('src', 'cache', 'format.ts'), 'utf8');
  const value = /^const HASH_BYTES = (.+);$/m.exec(source)?.[1];
  assert.ok(value, 'HASH_BYTES is defined in src/cache/format.ts');
  const r = spawnSync(process.execPath, [join('dist', 'cli.js'), 'ask', '--repo', join('src', 'cache'), 'What is the value of the constant HASH_BYTES?'],
    { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), value);
});
