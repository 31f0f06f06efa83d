// Cross-backend: the WebGPU forward pass (headless Chromium, SwiftShader) against the native CPU
// reference engine, logits at every position of each golden sequence.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readModelSpec } from '../../src/model/loader';
import type { NativeAddon } from '../../src/model/native';
import { loadAddon } from '../native/helpers';
import { MODEL_DIRS, openGpuPage, type GpuPage } from './gpu-harness';

const TOLERANCE = 1e-3;
const repo = resolve(import.meta.dirname, '../..');

function sequence(model: string): number[] {
  if (model === 'stories260K') return JSON.parse(readFileSync(join(repo, 'test/fixtures/reference/stories260K.json'), 'utf8')).ids;
  return JSON.parse(readFileSync(join(MODEL_DIRS[model], 'golden.json'), 'utf8')).greedy_ids;
}

describe('WebGPU against the native CPU engine', () => {
  let gpu: GpuPage;
  let addon: NativeAddon;
  before(async () => {
    assert.ok(existsSync(join(repo, 'native/build/Release/repo_lens.node')), 'the native addon is built (npm run build:native)');
    addon = loadAddon();
    gpu = await openGpuPage();
  });
  after(async () => gpu?.close());

  for (const model of ['stories260K', 'llama3', 'qwen2', 'mistral']) {
    test(`${model}: logits within ${TOLERANCE} of the CPU engine's`, async (t) => {
      const ids = sequence(model);
      const native = addon.loadModel(readModelSpec(MODEL_DIRS[model], { threads: 1 }));
      let cpu: Float32Array;
      try {
        cpu = native.forward(native.newSequence(), Int32Array.from(ids), 'all');
      } finally {
        native.dispose();
      }
      const webgpu = await gpu.page.evaluate(([m, x]) => window.gpuTest.logits(m, x, 64), [model, ids] as const);
      assert.equal(webgpu.length, cpu.length);
      let diff = 0;
      for (let i = 0; i < cpu.length; i++) diff = Math.max(diff, Math.abs(webgpu[i] - cpu[i]));
      t.diagnostic(`max |Δ| ${diff.toExponential(2)} over ${ids.length} positions`);
      assert.ok(diff <= TOLERANCE, `${model}: max |Δ| ${diff}`);
    });
  }
});
