import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSafetensorsHeader } from '../../src/model/safetensors';
import { ModelError } from '../../src/model/errors';

/** A safetensors file image from a header object and a data size. */
function file(header: unknown, dataBytes: number, rawHeader?: string): Uint8Array {
  const json = new TextEncoder().encode(rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp, fileSize = bytes.length): void {
  assert.throws(() => parseSafetensorsHeader(bytes, fileSize, 'w.safetensors'), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.match(e.message, /^w\.safetensors: /);
    assert.match(e.message, pattern);
    return true;
  });
}

const good = {
  __metadata__: { format: 'pt' },
  a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
  b: { dtype: 'BF16', shape: [4], data_offsets: [24, 32] },
  c: { dtype: 'F16', shape: [], data_offsets: [32, 34] },
};

test('valid header: absolute byte ranges, metadata skipped', () => {
  const bytes = file(good, 34);
  const h = parseSafetensorsHeader(bytes, bytes.length, 'w');
  const start = bytes.length - 34;
  assert.equal(h.dataStart, start);
  assert.deepEqual(h.tensors.map((t) => [t.name, t.dtype, t.shape, t.begin, t.end]), [
    ['a', 'F32', [2, 3], start, start + 24],
    ['b', 'BF16', [4], start + 24, start + 32],
    ['c', 'F16', [], start + 32, start + 34],
  ]);
});

test('header prefix alone is enough when the file size is given', () => {
  const bytes = file(good, 34);
  const h = parseSafetensorsHeader(bytes.subarray(0, bytes.length - 34), bytes.length, 'w');
  assert.equal(h.tensors.length, 3);
});

test('truncated file: shorter than the length field, header past the end, data past the end', () => {
  rejects(new Uint8Array(5), /truncated safetensors file: 5 bytes/);
  const bytes = file(good, 34);
  rejects(bytes.subarray(0, 20), /header length \d+ runs past the end of the file \(20 bytes\)/);
  rejects(bytes.subarray(0, bytes.length - 1), /tensor "c": data_offsets \[32, 34\] lie outside the file/);
});

test('absurd header length is refused', () => {
  const bytes = new Uint8Array(16);
  new DataView(bytes.buffer).setBigUint64(0, 0xffffffffffffn, true);
  rejects(bytes, /larger than the format's 100 MB limit/);
});

test('bad JSON', () => {
  rejects(file(null, 0, '{"a": '), /not valid JSON/);
  rejects(file([1], 0), /not a JSON object/);
});

test('offsets outside the file, overlapping, size not matching dtype x shape', () => {
  rejects(file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 800] } }, 8), /tensor "a": data_offsets \[0, 800\] lie outside the file/);
  rejects(file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /"a" and "b" overlap/);
  rejects(file({ a: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } }, 8), /8 bytes of data, but F16 with shape \[3\] needs 6/);
  rejects(file({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8), /not a \[begin, end\] pair/);
  rejects(file({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8), /shape \[-2\]/);
});

test('unsupported and unknown dtypes name the tensor and dtype', () => {
  rejects(file({ w: { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }, 4), /tensor "w": dtype "I8" is not supported \(supported: F32, F16, BF16\)/);
  rejects(file({ w: { dtype: 'Q4_K', shape: [4], data_offsets: [0, 4] } }, 4), /tensor "w": dtype "Q4_K" is unknown/);
});
