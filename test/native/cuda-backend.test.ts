// The CUDA backend's build and run-time verdict: on CI (no GPU) an addon built with nvcc lists
// "cuda" as unavailable with the CUDA runtime's reason and the CPU backend stays usable; one built
// without says so. Where a GPU answers, the whole forward pass on CUDA must give transformers'
// greedy ids and logits, as the CPU does. The kernels are checked on a GPU by bench/gpu/attention.py
// and ops.py against float64 references, the forward pass without Node.js by bench/gpu/forward_check.cc
// (see bench/gpu/NOTES.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readModelSpec } from '../../src/model/loader';
import { ATTENTION_DEFAULTS } from '../../src/trace/attention';
import type { NativeModel } from '../../src/model/native';
import { FIXTURES, greedy, loadAddon, maxAbsDiff, readF32, readJson } from './helpers';

const addon = loadAddon();
const targetMakefile = join('native', 'build', 'repo_lens.target.mk');
const builtWithCuda = existsSync(targetMakefile) && readFileSync(targetMakefile, 'utf8').includes('-DREPO_LENS_CUDA=1');
const hasNvidiaDriver = existsSync('/proc/driver/nvidia/version');

const cudaAvailable = addon.backends().some((b) => b.name === 'cuda' && b.available);

test('cuda is listed, with the reason when it cannot be used, and cpu stays available', () => {
  const list = addon.backends();
  assert.deepEqual(list.find((b) => b.name === 'cpu'), { name: 'cpu', available: true });
  const cuda = list.find((b) => b.name === 'cuda');
  assert.ok(cuda, 'backends() lists cuda');
  if (cuda.available) {
    assert.ok(builtWithCuda && hasNvidiaDriver, 'cuda is available only in a CUDA build on a machine with a driver');
    assert.equal(cuda.reason, undefined);
  } else if (!builtWithCuda) {
    assert.match(cuda.reason ?? '', /no CUDA backend/);
  } else if (!hasNvidiaDriver) {
    // The CUDA runtime's own error, e.g. cudaErrorInsufficientDriver on a machine with no driver.
    assert.match(cuda.reason ?? '', /no usable CUDA driver or GPU: cudaError\w+ \(/);
  } else {
    assert.match(cuda.reason ?? '', /compute capability|cudaError|no GPU/);
  }
});

test('asking for cuda where it cannot be used is a clear error', { skip: cudaAvailable }, () => {
  const spec = readModelSpec(join(FIXTURES, 'models', 'llama3'));
  assert.throws(() => addon.loadModel({ ...spec, backend: 'cuda' }), /backend "cuda" cannot be used: /);
});

for (const name of ['llama3', 'qwen2', 'mistral']) {
  test(`${name} on cuda: greedy ids identical to transformers, logits within 1e-3`, { skip: !cudaAvailable && 'no usable CUDA GPU' }, () => {
    const dir = join(FIXTURES, 'models', name);
    const golden = readJson(join(dir, 'golden.json'));
    const expected = readF32(join(dir, golden.logits_file));
    const vocab = golden.logits_shape[1];
    const model = addon.loadModel({ ...readModelSpec(dir, { kvBlockSize: 16 }), backend: 'cuda' });
    assert.equal(model.stats().backend, 'cuda');
    // The float32 prefill never runs on cuBLASLt (native/cuda/gemm_cublaslt.cuh): nothing to add.
    assert.equal(model.stats().backendDetail, '');
    const decoded = greedy(model, golden.prompt_ids, golden.greedy_ids.length, vocab);
    assert.deepEqual(decoded.ids, golden.greedy_ids);
    assert.ok(maxAbsDiff(decoded.logits, expected.subarray(0, decoded.logits.length)) <= 1e-3);
    const batch = model.forward(model.newSequence(), Int32Array.from(golden.greedy_ids), 'all');
    assert.ok(maxAbsDiff(batch, expected) <= 1e-3);
    model.dispose();
  });
}

// PrHS on cuda: the host selects from the keys the GPU wrote through, the GPU attends the chosen
// blocks; the CPU engine is the oracle (bench/gpu/prhs_engine_check.cc checks more settings without Node).
for (const name of ['llama3', 'qwen2']) {
  test(`${name}: PrHS decode on cuda selects the CPU's blocks, logits within 1e-4 relative`, { skip: !cudaAvailable && 'no usable CUDA GPU' }, () => {
    const dir = join(FIXTURES, 'models', name);
    const spec = readModelSpec(dir, { kvBlockSize: 16 });
    const ids = Array.from({ length: 300 }, (_, i) => (i * 37 + 11) % spec.arch.vocabSize);
    const settings = { ...ATTENTION_DEFAULTS, mode: 'prhs' as const, window: 16, budget: 0.2, strict: true, audit: true };
    const run = (backend: 'cpu' | 'cuda') => {
      const model: NativeModel = addon.loadModel({ ...spec, backend });
      const seq = model.newSequence();
      model.forward(seq, Int32Array.from(ids.slice(0, 260)), 'none');
      model.setAttention(settings);
      const steps = ids.slice(260).map((id) => ({ logits: model.forward(seq, Int32Array.of(id), 'last'), step: model.attentionStep() }));
      const counters = model.attentionCounters();
      model.dispose();
      return { steps, counters };
    };
    const cpu = run('cpu');
    const cuda = run('cuda');
    for (let t = 0; t < cpu.steps.length; t++) {
      const blocks = (r: typeof cpu) => r.steps[t].step?.layers.map((heads) => heads.map((h) => [h.blocks, h.source, h.expanded]));
      assert.deepEqual(blocks(cuda), blocks(cpu), `step ${t}`);
      const peak = Math.max(...cpu.steps[t].logits.map(Math.abs));
      assert.ok(maxAbsDiff(cuda.steps[t].logits, cpu.steps[t].logits) <= 1e-4 * peak, `step ${t} logits`);
    }
    assert.deepEqual(cuda.counters, cpu.counters);
  });
}

test('the CUDA build links the CUDA runtime statically (nothing to install at run time)', { skip: !builtWithCuda }, () => {
  const mk = readFileSync(targetMakefile, 'utf8');
  assert.match(mk, /-lcudart_static/);
  assert.doesNotMatch(mk, /-lcudart(?!_static)/);
});
