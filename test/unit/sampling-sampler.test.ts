import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, Sampler, sampleTopP, SeededRandom } from '../../src/model/sampling';

const logits = Float32Array.from([1, 3, 2, 3, -1, 0.5]);

test('greedy: argmax, first index on ties', () => {
  assert.equal(argmax(logits), 1);
  assert.equal(new Sampler({ temperature: 0, topP: 1, seed: 5 }).sample(logits), 1);
});

test('seeded PRNG: same seed, same stream; different seeds differ; values in [0, 1)', () => {
  const a = new SeededRandom(42), b = new SeededRandom(42), c = new SeededRandom(43);
  const xa = Array.from({ length: 100 }, () => a.next());
  assert.deepEqual(xa, Array.from({ length: 100 }, () => b.next()));
  assert.notDeepEqual(xa, Array.from({ length: 100 }, () => c.next()));
  assert.ok(xa.every((x) => x >= 0 && x < 1));
});

test('top-p keeps only the nucleus: tokens outside it are never drawn', () => {
  // softmax at T=1 of [5, 4, 0, 0]: ~[0.72, 0.26, 0.01, 0.01]; top-p 0.9 keeps ids 0 and 1.
  const l = Float32Array.from([5, 4, 0, 0]);
  for (let i = 0; i < 1000; i++) assert.ok(sampleTopP(l, 1, 0.9, i / 1000) <= 1);
  assert.equal(sampleTopP(l, 1, 0.5, 0.999), 0, 'top-p 0.5: the single most likely token');
});

test('temperature sampling follows the softmax distribution (frequencies within a few percent)', () => {
  const l = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  const s = new Sampler({ temperature: 1, topP: 1, seed: 1 });
  const counts = [0, 0, 0];
  const n = 20000;
  for (let i = 0; i < n; i++) counts[s.sample(l)]++;
  [0.5, 0.3, 0.2].forEach((p, i) => assert.ok(Math.abs(counts[i] / n - p) < 0.02, `token ${i}: ${counts[i] / n} vs ${p}`));
});

test('a seed gives the same sampled tokens on every run', () => {
  const run = (seed: number) => {
    const s = new Sampler({ temperature: 0.8, topP: 0.95, seed });
    return Array.from({ length: 50 }, () => s.sample(logits));
  };
  assert.deepEqual(run(7), run(7));
  assert.notDeepEqual(run(7), run(8));
});

test('invalid options are refused', () => {
  assert.throws(() => new Sampler({ temperature: -1, topP: 1, seed: 0 }), /temperature/);
  assert.throws(() => new Sampler({ temperature: 1, topP: 0, seed: 0 }), /topP/);
});

test('top-p with the probability cutoff picks exactly what a full sort picks (random logits, many draws)', () => {
  const reference = (l: Float32Array, t: number, p: number, u: number) => {
    const max = Math.max(...l);
    const probs = Array.from(l, (x) => Math.exp((x - max) / t));
    const sum = probs.reduce((a, b) => a + b, 0);
    const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
    let mass = 0, kept = 0;
    while (kept < order.length) { mass += probs[order[kept++]]; if (mass >= p * sum) break; }
    let target = u * mass;
    for (let k = 0; k < kept; k++) { target -= probs[order[k]]; if (target < 0) return order[k]; }
    return order[kept - 1];
  };
  const random = new SeededRandom(99);
  for (let trial = 0; trial < 200; trial++) {
    const l = Float32Array.from({ length: 300 }, () => (random.next() - 0.5) * 12);
    const t = 0.3 + random.next() * 1.5, p = 0.5 + random.next() * 0.49, u = random.next();
    assert.equal(sampleTopP(l, t, p, u), reference(l, t, p, u), `trial ${trial}`);
  }
});
