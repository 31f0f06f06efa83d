// readModelSpec on broken model folders, each made from stories260K in a temp dir: a clear
// ModelError naming the file and the problem, never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelSpec } from '../../src/model/loader';
import { ModelError } from '../../src/model/errors';

const STORIES = join('..', 'shared', 'models', 'stories260K', 'hf');

/** A writable copy of stories260K's config.json and model.safetensors. */
function copyOfStories(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'repo-lens-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(STORIES, f), join(dir, f));
  return dir;
}

function editConfig(dir: string, edit: (c: any) => void): void {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  edit(c);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
}

/** Rewrites a safetensors file's JSON header (the data stays as it is). */
function editHeader(file: string, edit: (h: any, dataSize: number) => void): void {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const data = bytes.subarray(8 + n);
  edit(header, data.length);
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([length, json, data]));
}

function rejects(dir: string, file: string, pattern: RegExp): void {
  assert.throws(() => readModelSpec(dir), (e: unknown) => {
    assert.ok(e instanceof ModelError, String(e));
    assert.equal(e.file, join(dir, file));
    assert.ok(e.message.startsWith(join(dir, file) + ': '), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('stories260K reads into a spec with 47 checked tensors', () => {
  const spec = readModelSpec(STORIES, { kvBlockSize: 16, contextTokens: 100000 });
  assert.equal(spec.tensors.length, 47);
  assert.equal(spec.kvBlockSize, 16);
  assert.equal(spec.contextTokens, 512);  // clamped to max_position_embeddings
  assert.ok(spec.tensors.every((t) => t.file.endsWith('model.safetensors') && t.end > t.begin));
});

test('sharded fixture: tensors come from the shards the index names', () => {
  const spec = readModelSpec(join('test', 'fixtures', 'models', 'mistral'));
  assert.ok(new Set(spec.tensors.map((t) => t.file)).size > 1);
});

test('missing config.json', (t) => {
  const dir = copyOfStories(t);
  rmSync(join(dir, 'config.json'));
  rejects(dir, 'config.json', /missing: a model folder needs config.json/);
});

test('unsupported architecture', (t) => {
  const dir = copyOfStories(t);
  editConfig(dir, (c) => { c.architectures = ['GPT2LMHeadModel']; c.model_type = 'gpt2'; });
  rejects(dir, 'config.json', /model_type "gpt2" is not supported/);
});

test('config.json that is not JSON', (t) => {
  const dir = copyOfStories(t);
  writeFileSync(join(dir, 'config.json'), '{"hidden_size": ');
  rejects(dir, 'config.json', /not valid JSON/);
});

test('missing weights', (t) => {
  const dir = copyOfStories(t);
  rmSync(join(dir, 'model.safetensors'));
  assert.throws(() => readModelSpec(dir), /neither model\.safetensors nor model\.safetensors\.index\.json/);
});

test('truncated safetensors (in the data, and in the header)', (t) => {
  const dir = copyOfStories(t);
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length / 2));
  rejects(dir, 'model.safetensors', /data_offsets \[\d+, \d+\] lie outside the file .*truncated\?/);
  writeFileSync(file, bytes.subarray(0, 100));
  rejects(dir, 'model.safetensors', /truncated safetensors file: header length \d+ runs past the end of the file \(100 bytes\)/);
  writeFileSync(file, bytes.subarray(0, 3));
  rejects(dir, 'model.safetensors', /truncated safetensors file: 3 bytes/);
});

test('tensor offsets outside the file', (t) => {
  const dir = copyOfStories(t);
  editHeader(join(dir, 'model.safetensors'), (h, dataSize) => {
    const w = h['model.norm.weight'];
    const size = w.data_offsets[1] - w.data_offsets[0];
    w.data_offsets = [dataSize + 64, dataSize + 64 + size];
  });
  rejects(dir, 'model.safetensors', /tensor "model\.norm\.weight": data_offsets \[\d+, \d+\] lie outside the file/);
});

test('overlapping tensors', (t) => {
  const dir = copyOfStories(t);
  editHeader(join(dir, 'model.safetensors'), (h) => {
    h['model.norm.weight'].data_offsets = [...h['model.layers.0.input_layernorm.weight'].data_offsets];
  });
  rejects(dir, 'model.safetensors', /overlap/);
});

test('unknown dtype', (t) => {
  const dir = copyOfStories(t);
  editHeader(join(dir, 'model.safetensors'), (h) => { h['model.norm.weight'].dtype = 'Q4_K'; });
  rejects(dir, 'model.safetensors', /tensor "model\.norm\.weight": dtype "Q4_K" is unknown \(supported: F32, F16, BF16\)/);
  editHeader(join(dir, 'model.safetensors'), (h) => { h['model.norm.weight'].dtype = 'I32'; });
  rejects(dir, 'model.safetensors', /tensor "model\.norm\.weight": dtype "I32" is not supported/);
});

test('shape mismatch with the config', (t) => {
  const dir = copyOfStories(t);
  editConfig(dir, (c) => { c.intermediate_size = 128; });
  rejects(dir, 'model.safetensors', /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[172, 64\], but config\.json implies \[128, 64\]/);
});

test('a tensor the architecture needs is missing', (t) => {
  const dir = copyOfStories(t);
  editConfig(dir, (c) => { c.tie_word_embeddings = false; });
  rejects(dir, 'model.safetensors', /tensor "lm_head\.weight" is missing/);
});

test('sharded index naming a missing shard or a path outside the folder', (t) => {
  const dir = copyOfStories(t);
  const index = (map: Record<string, string>) => writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: map }));
  index({ 'model.norm.weight': 'model-00001-of-00002.safetensors' });
  rejects(dir, 'model-00001-of-00002.safetensors', /missing: listed in .*model\.safetensors\.index\.json/);
  index({ 'model.norm.weight': '../model.safetensors' });
  rejects(dir, 'model.safetensors.index.json', /not a \.safetensors file name in the folder/);
});
