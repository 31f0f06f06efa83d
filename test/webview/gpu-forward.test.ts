// The WebGPU forward pass against transformers' fp32 logits (headless Chromium, SwiftShader).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openGpuPage, MODEL_DIRS, type GpuPage } from './gpu-harness';

const repo = resolve(import.meta.dirname, '../..');
const TOLERANCE = 1e-3;

function readF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; at: number } {
  assert.equal(a.length, b.length, 'logits length');
  let diff = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= diff)) {
      diff = d;
      at = i;
    }
  }
  return { diff, at };
}

/** The golden sequence and its reference logits [positions, vocab] for each model. */
function golden(model: string): { ids: number[]; logits: Float32Array; vocab: number } {
  if (model === 'stories260K') {
    const meta = JSON.parse(readFileSync(join(repo, 'test/fixtures/reference/stories260K.json'), 'utf8'));
    return { ids: meta.ids, logits: readF32(join(repo, 'test/fixtures/reference/stories260K-logits.f32')), vocab: meta.logits_shape[1] };
  }
  const meta = JSON.parse(readFileSync(join(MODEL_DIRS[model], 'golden.json'), 'utf8'));
  return { ids: meta.greedy_ids, logits: readF32(join(MODEL_DIRS[model], meta.logits_file)), vocab: meta.logits_shape[1] };
}

describe('WebGPU forward pass', () => {
  let gpu: GpuPage;
  before(async () => {
    gpu = await openGpuPage();
    const adapter = await gpu.page.evaluate(() => window.gpuTest.adapter());
    assert.doesNotMatch(adapter, /^unavailable/, 'Chromium must offer a WebGPU adapter with --enable-unsafe-webgpu');
  });
  after(async () => gpu?.close());

  for (const model of ['stories260K', 'llama3', 'qwen2', 'mistral']) {
    test(`${model}: logits at every position within ${TOLERANCE} of transformers`, async (t) => {
      const g = golden(model);
      // Chunks of 16 rows: prefill spans several submissions, so later chunks read earlier ones' KV.
      const logits = await gpu.page.evaluate(([m, ids]) => window.gpuTest.logits(m, ids, 16), [model, g.ids] as const);
      const { diff, at } = maxAbsDiff(logits, g.logits);
      t.diagnostic(`max |Δ| ${diff.toExponential(2)} over ${g.ids.length} positions × ${g.vocab}`);
      assert.ok(diff <= TOLERANCE, `${model}: max |Δ| ${diff} at position ${Math.floor(at / g.vocab)}, token ${at % g.vocab}`);
    });
  }
});
