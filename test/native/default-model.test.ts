// The shipped default model (models/repo-lens-code, trained by tools/train) against transformers:
// goldens from tools/train/evaluate.py (fp32 on the CPU) for two held-out prompts of about 2K tokens,
// one in the eval form (key-value retrieval) and one in the ask form (a repository question).
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
