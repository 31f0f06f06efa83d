// The engine's side of the disk cache (src/cache/prefix.ts) on stories260K: a prompt that shares
// only part of the cached prefix (a file edited while the engine was off) restores exactly the
// common part, and continues bit-identically; saving under a cap evicts the least recently used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { cacheFingerprint, entryFile, PrefixDiskCache } from '../../src/cache';
import { readModelSpec } from '../../src/model/loader';
import type { NativeAddon, NativeModel } from '../../src/model/native';
import { ADDON, STORIES } from './engine-harness';

const work = mkdtempSync(join(tmpdir(), 'rl-prefix-'));
const addonPath = join(work, 'repo_lens.node');
copyFileSync(ADDON, addonPath);
const addon = createRequire(join(process.cwd(), 'package.json'))(addonPath) as NativeAddon;
const spec = readModelSpec(STORIES, { kvBlockSize: 16, threads: 1 });
const shape = { layers: spec.arch.numLayers, kvHeads: spec.arch.numKvHeads, headDim: spec.arch.headDim };
const fingerprint = cacheFingerprint({ modelDir: STORIES, spec, backend: 'cpu', addonPath });

const ids = (n: number, from = 300) => Array.from({ length: n }, (_, i) => from + ((i * 37) % 200));

function model(): NativeModel {
  return addon.loadModel({ ...spec, backend: 'cpu' });
}

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

test('a prompt sharing part of the cached prefix restores exactly that part and continues as a fresh prefill', () => {
  const dir = join(work, 'partial');
  const cached = ids(90);
  const writer = model();
  const seq = writer.newSequence();
  writer.forward(seq, Int32Array.from(cached), 'none');
  assert.equal(new PrefixDiskCache(fingerprint, shape).save(writer, seq, cached, { dir, key: 'repo' }), 90);
  writer.dispose();

  // The same first 53 ids, then different ones (as after an edit in the middle of the repository).
  const prompt = [...cached.slice(0, 53), ...ids(40, 100)];
  const reader = model();
  const disk = new PrefixDiskCache(fingerprint, shape);
  assert.equal(disk.restore(reader, prompt, prompt.length - 1, 53, { dir, key: 'repo' }), null, 'nothing longer than what the caller holds');
  const restored = disk.restore(reader, prompt, prompt.length - 1, 0, { dir, key: 'repo' });
  assert.ok(restored);
  assert.equal(restored.tokens, 53);
  assert.equal(reader.sequenceLength(restored.seq), 53);
  const got = reader.forward(restored.seq, Int32Array.from(prompt.slice(53)), 'all');
  assert.equal(reader.stats().tokensForwarded, 40);

  const fresh = model();
  const s = fresh.newSequence();
  fresh.forward(s, Int32Array.from(prompt.slice(0, 53)), 'none');
  const want = fresh.forward(s, Int32Array.from(prompt.slice(53)), 'all');
  assert.ok(bits(got).equals(bits(want)), 'logits after a partial restore differ from a fresh prefill');
  assert.equal(disk.restore(reader, ids(20, 5), 19, 0, { dir, key: 'other repo' }), null, 'no entry for another key');
  assert.deepEqual(disk.takeNotes(), []);
  reader.dispose();
  fresh.dispose();
});

test('saving under a cap removes the least recently used entry and says so; an unchanged prefix is not written again', () => {
  const dir = join(work, 'capped');
  const m = model();
  const seq = m.newSequence();
  const prefix = ids(60);
  m.forward(seq, Int32Array.from(prefix), 'none');
  const heard: string[] = [];
  const disk = new PrefixDiskCache(fingerprint, shape, (n) => heard.push(n));
  const entryBytes = 60 * 2 * shape.layers * shape.kvHeads * shape.headDim * 4;
  const options = (key: string) => ({ dir, key, maxBytes: Math.floor(entryBytes * 2.5) });
  assert.equal(disk.save(m, seq, prefix, options('a')), 60);
  assert.equal(disk.save(m, seq, prefix, options('b')), 60);
  // Written minutes ago (a before b), so the order does not hang on clock resolution.
  utimesSync(entryFile(dir, 'a', fingerprint), new Date(Date.now() - 180_000), new Date(Date.now() - 180_000));
  utimesSync(entryFile(dir, 'b', fingerprint), new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
  assert.equal(disk.save(m, seq, prefix, options('a')), 0, 'a already holds this prefix');
  assert.deepEqual(disk.takeNotes(), []);
  assert.equal(disk.save(m, seq, prefix, options('c')), 60);
  const notes = disk.takeNotes();
  assert.deepEqual(notes, [`removed ${basename(entryFile(dir, 'b', fingerprint))} (least recently used) to keep the cache under ${(options('c').maxBytes / 1048576).toFixed(1)} MiB`]);
  assert.deepEqual(heard, notes, 'onNote hears every note');
  assert.deepEqual(readdirSync(dir).sort(), [entryFile(dir, 'a', fingerprint), entryFile(dir, 'c', fingerprint)].map((f) => basename(f)).sort());
  m.dispose();
});

test('the fingerprint tells a half-precision CUDA prefill apart (its KV differs); the CPU ignores prefillPrecision', () => {
  const of = (backend: string, prefillPrecision?: 'float32' | 'half') => cacheFingerprint({ modelDir: STORIES, spec: { ...spec, prefillPrecision }, backend, addonPath }).backend;
  assert.equal(of('cuda'), 'cuda');
  assert.equal(of('cuda', 'float32'), 'cuda');
  assert.equal(of('cuda', 'half'), 'cuda/half-prefill');
  assert.equal(of('cpu', 'half'), 'cpu');
});

test('the fingerprint tells the library of a CUDA prefill apart (cuBLASLt rounds differently from our GEMM)', () => {
  const of = (backendDetail?: string) =>
    cacheFingerprint({ modelDir: STORIES, spec: { ...spec, prefillPrecision: 'half' }, backend: 'cuda', backendDetail, addonPath }).backend;
  assert.equal(of(), 'cuda/half-prefill');
  assert.equal(of(''), 'cuda/half-prefill', 'no detail: the same entries as before');
  assert.equal(of('prefill GEMM on cuBLASLt 13.1.0'), 'cuda/half-prefill; prefill GEMM on cuBLASLt 13.1.0');
  assert.notEqual(of('prefill GEMM on cuBLASLt 12.9.1'), of('prefill GEMM on cuBLASLt 13.1.0'));
});
