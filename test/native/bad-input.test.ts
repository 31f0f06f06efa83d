// The addon on bad input: a JavaScript Error with a clear message, the process and the model
// still usable afterwards. Specs are tampered with after the TypeScript loader's checks, so
// these exercise the addon's own defensive checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readModelSpec } from '../../src/model/loader';
import type { NativeModelSpec } from '../../src/model/native';
import { STORIES_DIR, loadAddon } from './helpers';

const addon = loadAddon();
const base = (): NativeModelSpec => readModelSpec(STORIES_DIR, { threads: 1 });

function withTensor(spec: NativeModelSpec, name: string, edit: (t: NativeModelSpec['tensors'][number]) => void): NativeModelSpec {
  const tensors = spec.tensors.map((t) => {
    if (t.name !== name) return t;
    const copy = { ...t, shape: [...t.shape] };
    edit(copy);
    return copy;
  });
  return { ...spec, tensors };
}

test('a tensor range beyond the mapped file is refused naming the file and tensor', () => {
  const spec = withTensor(base(), 'model.norm.weight', (t) => { t.begin += 10_000_000; t.end += 10_000_000; });
  assert.throws(() => addon.loadModel(spec), /model\.safetensors: tensor "model\.norm\.weight": bytes \d+\.\.\d+ lie outside the file/);
});

test('a byte range not matching dtype x shape, an unsupported dtype, a wrong shape', () => {
  assert.throws(() => addon.loadModel(withTensor(base(), 'model.norm.weight', (t) => { t.end -= 4; })), /tensor "model\.norm\.weight": 252 bytes, but F32 \[64\] needs 256/);
  assert.throws(() => addon.loadModel(withTensor(base(), 'model.norm.weight', (t) => { (t as { dtype: string }).dtype = 'I8'; })), /dtype "I8" is not supported/);
  assert.throws(() => addon.loadModel(withTensor(base(), 'model.norm.weight', (t) => { t.shape = [32, 2]; })), /has shape \[32, 2\], but the config implies \[64\]/);
});

test('a missing weights file and a missing tensor', () => {
  assert.throws(() => addon.loadModel(withTensor(base(), 'model.norm.weight', (t) => { t.file = '/nonexistent/w.safetensors'; })), /\/nonexistent\/w\.safetensors: cannot open/);
  const spec = base();
  assert.throws(() => addon.loadModel({ ...spec, tensors: spec.tensors.filter((t) => t.name !== 'model.norm.weight') }), /tensor "model\.norm\.weight" is missing/);
});

test('malformed specs are TypeErrors naming the field', () => {
  const spec = base();
  assert.throws(() => addon.loadModel({ ...spec, arch: { ...spec.arch, hiddenSize: 1.5 } }), /spec\.arch\.hiddenSize must be an integer/);
  assert.throws(() => addon.loadModel({ ...spec, kvBlockSize: 4096 }), /kvBlockSize must lie in/);
  assert.throws(() => addon.loadModel({ ...spec, contextTokens: 100000 }), /contextTokens must lie in/);
  assert.throws(() => addon.loadModel(null as unknown as NativeModelSpec), /spec must be an object/);
});

test('token ids outside the vocabulary', () => {
  const model = addon.loadModel(base());
  const seq = model.newSequence();
  assert.throws(() => model.forward(seq, Int32Array.of(1, 512), 'last'), /token id 512 at index 1 is outside the vocabulary \[0, 512\)/);
  assert.throws(() => model.forward(seq, Int32Array.of(-1), 'last'), /token id -1/);
  assert.equal(model.sequenceLength(seq), 0);
  assert.throws(() => model.forward(seq, [1, 2] as unknown as Int32Array, 'last'), /tokens must be an Int32Array/);
  assert.throws(() => model.forward(seq, Int32Array.of(1), 'some' as 'last'), /logits must be "none", "last" or "all"/);
  model.dispose();
});

test('context full: refused, the sequence unchanged and still usable', () => {
  const model = addon.loadModel(readModelSpec(STORIES_DIR, { contextTokens: 16, kvBlockSize: 4 }));
  const seq = model.newSequence();
  model.forward(seq, new Int32Array(10).fill(1), 'none');
  assert.throws(() => model.forward(seq, new Int32Array(7).fill(1), 'last'), /context full: the sequence holds 10 tokens and 7 more would exceed the context of 16 tokens/);
  assert.equal(model.sequenceLength(seq), 10);
  assert.equal(model.forward(seq, new Int32Array(6).fill(1), 'last').length, 512);
  model.dispose();
});

test('out of KV blocks: refused, nothing leaked, later requests work', () => {
  const model = addon.loadModel({ ...readModelSpec(STORIES_DIR, { kvBlockSize: 4 }), kvBlocks: 3 });
  const a = model.newSequence();
  model.forward(a, new Int32Array(8).fill(1), 'none');  // 2 blocks
  const b = model.newSequence();
  assert.throws(() => model.forward(b, new Int32Array(5).fill(1), 'last'), /KV cache: out of blocks \(3 blocks of 4 positions in all, 1 free, 2 needed\)/);
  assert.equal(model.sequenceLength(b), 0);
  assert.equal(model.stats().kvBlocksInUse, 2);
  assert.equal(model.forward(b, new Int32Array(4).fill(1), 'last').length, 512);
  model.freeSequence(a);
  assert.equal(model.stats().kvBlocksInUse, 1);
  model.dispose();
});

test('unknown sequences and a disposed model', () => {
  const model = addon.loadModel(base());
  assert.throws(() => model.forward(42, Int32Array.of(1), 'last'), /no sequence 42/);
  assert.throws(() => model.forkSequence(42), /no sequence 42/);
  assert.throws(() => model.sequenceLength(-1), /seq must be an integer >= 0/);
  model.dispose();
  assert.throws(() => model.newSequence(), /the model was disposed/);
});

test('backends are listed with a reason when unusable; asking for one that is not built is refused', () => {
  const list = addon.backends();
  assert.deepEqual(list.find((b) => b.name === 'cpu'), { name: 'cpu', available: true });
  const cuda = list.find((b) => b.name === 'cuda');
  assert.ok(cuda);
  if (!cuda.available) {
    assert.match(cuda.reason ?? '', /\w/);
    assert.throws(() => addon.loadModel({ ...base(), backend: 'cuda' }), /backend "cuda" cannot be used: /);
  }
  assert.throws(() => addon.loadModel({ ...base(), backend: 'tpu' as 'cpu' }), /spec\.backend must be "cpu" or "cuda"/);
  const model = addon.loadModel({ ...base(), backend: 'cpu' });
  assert.equal(model.stats().backend, 'cpu');
  model.dispose();
});

test('prefillPrecision: "half" is accepted and ignored on the CPU backend (the same logits); anything else is refused naming the values', () => {
  const tokens = Int32Array.from([1, 403, 407, 261, 378, 375, 365, 290]);
  const logits = (prefillPrecision?: 'float32' | 'half') => {
    const model = addon.loadModel({ ...base(), backend: 'cpu', ...(prefillPrecision ? { prefillPrecision } : {}) });
    const out = model.forward(model.newSequence(), tokens, 'all');
    model.dispose();
    return out;
  };
  const plain = logits();
  assert.deepEqual(logits('half'), plain);
  assert.deepEqual(logits('float32'), plain);
  assert.throws(() => addon.loadModel({ ...base(), prefillPrecision: 'bogus' as 'half' }), (e: unknown) => e instanceof TypeError && /spec\.prefillPrecision must be "float32" or "half", found "bogus"/.test(e.message));
  assert.throws(() => addon.loadModel({ ...base(), prefillPrecision: 16 as unknown as 'half' }), /spec\.prefillPrecision must be "float32" or "half"/);
});
