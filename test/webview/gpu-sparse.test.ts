// The WebGPU sparse decode path on stories260K (headless Chromium, SwiftShader): with every block
// selected it reproduces transformers' logits; with PrHS and the baselines, the blocks it reads
// are the blocks the CPU reference (native/prhs, compiled with g++) selects for the very same
// queries and keys, step by step, layer by layer, KV head by KV head.

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ATTENTION_DEFAULTS, type AttentionSettings } from '../../src/trace/attention';
import { readModelSpec } from '../../src/model/loader';
import { loadAddon } from '../native/helpers';
import type { HeadRecord } from '../../webview/gpu/prhs/decodeAttention';
import { MODEL_DIRS, openGpuPage, type GpuPage } from './gpu-harness';
import { buildReference, runReference, selectionDifferences } from './gpu-prhs-reference';

const repo = resolve(import.meta.dirname, '../..');
const reference = JSON.parse(readFileSync(join(repo, 'test/fixtures/reference/stories260K.json'), 'utf8'));
const referenceLogits = (() => {
  const b = readFileSync(join(repo, 'test/fixtures/reference/stories260K-logits.f32'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
})();
const config = JSON.parse(readFileSync(join(MODEL_DIRS.stories260K, 'config.json'), 'utf8'));
const VOCAB = 512;
const PROMPT = 40;
const STEPS = 20;
const BLOCK = 4;
const addon = () => loadAddon();

describe('WebGPU sparse decode (stories260K)', () => {
  let gpu: GpuPage;
  let exe: string;
  before(async () => {
    exe = buildReference();
    gpu = await openGpuPage();
  });
  after(async () => {
    await gpu?.close();
    if (exe) rmSync(dirname(exe), { recursive: true, force: true });
  });

  const decode = (settings: Partial<AttentionSettings>) =>
    gpu.page.evaluate(
      ([prompt, s]) => window.gpuTest.sparseDecode('stories260K', prompt, 20, s, 4),
      [reference.ids.slice(0, PROMPT) as number[], { ...ATTENTION_DEFAULTS, ...settings }] as const,
    );

  test('every block selected: greedy ids and logits equal transformers\'', async () => {
    const run = await decode({ mode: 'dense' });
    assert.deepEqual(run.ids, reference.ids.slice(PROMPT, PROMPT + STEPS));
    let diff = 0;
    for (let i = 0; i < run.logits.length; i++) diff = Math.max(diff, Math.abs(run.logits[i] - referenceLogits[PROMPT * VOCAB + i]));
    assert.ok(diff <= 1e-3, `max |Δ| ${diff}`);
    const last = run.selections.at(-1)!;
    assert.equal(last.layers[0][0].blocks.length, Math.ceil((PROMPT + STEPS) / BLOCK));
  });

  const cases: [string, Partial<AttentionSettings>][] = [
    ['prhs', { mode: 'prhs', window: 8 }],
    ['prhs strict, int8 bounds, cross-layer groups, audited', { mode: 'prhs', window: 8, strict: true, keyBound: 'int8', layerGroup: 2, audit: true }],
    ['quest', { mode: 'quest', window: 8 }],
    ['streaming', { mode: 'streaming', window: 8 }],
  ];
  for (const [name, settings] of cases) {
    test(`${name}: the blocks read equal the CPU reference's selection for the same q and keys`, async (t) => {
      const p: AttentionSettings = { ...ATTENTION_DEFAULTS, ...settings };
      const run = await decode(p);
      const shape = {
        layers: config.num_hidden_layers, heads: config.num_attention_heads, kvHeads: config.num_key_value_heads,
        headDim: config.hidden_size / config.num_attention_heads, blockSize: BLOCK, prompt: PROMPT, steps: STEPS,
      };
      const keys = Float32Array.from(run.keys);
      const ref = runReference(exe, p, shape, keys, new Float32Array(keys.length), Float32Array.from(run.queries));
      assert.deepEqual(selectionDifferences(run.selections, ref.steps), []);
      // And the native engine itself, fed the same tokens with the same settings: its q and keys
      // differ from the GPU's in the last bits (about 1e-6), so δ̂ agrees to 1e-4, the blocks exactly.
      const native = addon().loadModel(readModelSpec(MODEL_DIRS.stories260K, { kvBlockSize: BLOCK, threads: 1 }));
      const nativeSteps: { step: number; layers: HeadRecord[][] }[] = [];
      try {
        const seq = native.newSequence();
        native.forward(seq, Int32Array.from(reference.ids.slice(0, PROMPT)), 'last');
        native.setAttention(p);
        for (const id of run.ids) {
          native.forward(seq, Int32Array.of(id), 'last');
          const step = native.attentionStep()!;
          nativeSteps.push({ step: step.step, layers: step.layers.map((heads) => heads.map((r) => ({ ...r, blocks: Array.from(r.blocks) }))) });
        }
      } finally {
        native.dispose();
      }
      assert.deepEqual(selectionDifferences(run.selections, nativeSteps, 1e-4), [], 'the native engine selects the same blocks');

      const records = run.selections.flatMap((s) => s.layers.flat());
      const read = records.reduce((a, r) => a + r.entriesRead, 0);
      const context = run.selections.reduce((a, s, i) => a + (PROMPT + i + 1) * s.layers.flat().length, 0);
      t.diagnostic(`KV entries read: ${(100 * read / context).toFixed(1)}% of the context; sources ${[...new Set(records.map((r) => r.source))].join(', ')}`);
      assert.ok(read < context, 'the sparse path reads fewer KV entries than dense');
    });
  }
});
