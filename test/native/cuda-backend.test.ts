// The CUDA backend's build and run-time verdict, as CI sees it (no GPU there): an addon built
// with nvcc lists "cuda" as unavailable with the CUDA runtime's reason and the CPU backend stays
// usable; one built without says so. The kernels themselves are checked on a GPU by
// bench/gpu/attention.py against float64 references (see bench/gpu/NOTES.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAddon } from './helpers';

const addon = loadAddon();
const targetMakefile = join('native', 'build', 'repo_lens.target.mk');
const builtWithCuda = existsSync(targetMakefile) && readFileSync(targetMakefile, 'utf8').includes('-DREPO_LENS_CUDA=1');
const hasNvidiaDriver = existsSync('/proc/driver/nvidia/version');

test('cuda is listed with the reason it cannot be used, and cpu stays available', () => {
  const list = addon.backends();
  assert.deepEqual(list.find((b) => b.name === 'cpu'), { name: 'cpu', available: true });
  const cuda = list.find((b) => b.name === 'cuda');
  assert.ok(cuda, 'backends() lists cuda');
  assert.equal(cuda.available, false);
  if (!builtWithCuda) {
    assert.match(cuda.reason ?? '', /no CUDA backend/);
  } else if (!hasNvidiaDriver) {
    // The CUDA runtime's own error, e.g. cudaErrorInsufficientDriver on a machine with no driver.
    assert.match(cuda.reason ?? '', /no usable CUDA driver or GPU: cudaError\w+ \(/);
  } else {
    assert.match(cuda.reason ?? '', /found, but|compute capability|cudaError/);
  }
});

test('the CUDA build links the CUDA runtime statically (nothing to install at run time)', { skip: !builtWithCuda }, () => {
  const mk = readFileSync(targetMakefile, 'utf8');
  assert.match(mk, /-lcudart_static/);
  assert.doesNotMatch(mk, /-lcudart(?!_static)/);
});
