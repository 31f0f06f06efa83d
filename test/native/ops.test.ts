// Every CPU op against a straightforward float64 JavaScript reference on fresh random inputs
// (as ggml's test-backend-ops does). The seed is printed in every failure message so a failing
// run can be replayed with REPO_LENS_OPS_SEED. A CUDA backend adds its ops to the same table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WeightDtype } from '../../src/model/native';
import { loadAddon } from './helpers';

const ops = loadAddon().ops;
const SEED = Number(process.env.REPO_LENS_OPS_SEED ?? Date.now() % 2 ** 31);

// mulberry32: small, seedable.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(SEED);
const uniform = (lo: number, hi: number) => lo + (hi - lo) * random();
const floats = (n: number, scale = 1) => Float32Array.from({ length: n }, () => uniform(-scale, scale));

function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  return exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
function bf16ToNumber(h: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setUint32(0, h << 16, true);
  return b.getFloat32(0, true);
}

/** Random weight bytes of a dtype and the values they hold (subnormal F16 values included). */
function weight(dtype: WeightDtype, count: number): { bytes: Uint8Array; values: Float64Array } {
  const values = new Float64Array(count);
  if (dtype === 'F32') {
    const f = floats(count);
    values.set(f);
    return { bytes: new Uint8Array(f.buffer), values };
  }
  const bits = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const sign = random() < 0.5 ? 0x8000 : 0;
    if (dtype === 'F16') {
      bits[i] = sign | (Math.floor(uniform(0, 16)) << 10) | Math.floor(uniform(0, 1024));  // |v| < 1, subnormals at exp 0
      values[i] = f16ToNumber(bits[i]);
    } else {
      bits[i] = sign | (Math.floor(uniform(117, 128)) << 7) | Math.floor(uniform(0, 128));  // 2^-10 <= |v| < 2
      values[i] = bf16ToNumber(bits[i]);
    }
  }
  return { bytes: new Uint8Array(bits.buffer), values };
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, tolerance: (i: number) => number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    assert.ok(err <= tolerance(i), `${what} [seed ${SEED}]: element ${i} is ${got[i]}, reference ${want[i]} (error ${err})`);
  }
}

const DTYPES: WeightDtype[] = ['F32', 'F16', 'BF16'];

for (const dtype of DTYPES) {
  for (const [n, rows, cols, bias] of [[1, 37, 75, false], [3, 64, 64, true], [5, 300, 200, true]] as const) {
    test(`matmul ${dtype} n=${n} ${rows}x${cols}${bias ? ' +bias' : ''}`, () => {
      const x = floats(n * cols);
      const w = weight(dtype, rows * cols);
      const b = bias ? floats(rows) : null;
      const want = new Float64Array(n * rows), scale = new Float64Array(n * rows);
      for (let t = 0; t < n; t++) {
        for (let r = 0; r < rows; r++) {
          let s = b ? b[r] : 0, mag = b ? Math.abs(b[r]) : 0;
          for (let c = 0; c < cols; c++) {
            s += x[t * cols + c] * w.values[r * cols + c];
            mag += Math.abs(x[t * cols + c] * w.values[r * cols + c]);
          }
          want[t * rows + r] = s;
          scale[t * rows + r] = mag;
        }
      }
      const got = ops.matmul(x, n, w.bytes, dtype, rows, cols, b);
      close(got, want, (i) => 1e-6 * scale[i] + 1e-7, 'matmul');
    });
  }

  test(`rmsnorm ${dtype}`, () => {
    const n = 3, dim = 96, eps = 1e-5;
    const x = floats(n * dim, 3);
    const w = weight(dtype, dim);
    const want = new Float64Array(n * dim);
    for (let t = 0; t < n; t++) {
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += x[t * dim + i] ** 2;
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) want[t * dim + i] = x[t * dim + i] * inv * w.values[i];
    }
    close(ops.rmsnorm(x, w.bytes, dtype, n, dim, eps), want, (i) => 1e-6 * (1 + Math.abs(want[i])), 'rmsnorm');
  });

  test(`embed ${dtype}`, () => {
    const rows = 50, cols = 24;
    const table = weight(dtype, rows * cols);
    const tokens = Int32Array.from({ length: 7 }, () => Math.floor(uniform(0, rows)));
    const want = Array.from(tokens).flatMap((t) => Array.from(table.values.subarray(t * cols, (t + 1) * cols)));
    close(ops.embed(table.bytes, dtype, rows, cols, tokens), want, () => 0, 'embed');
  });
}

test('rope (rotate_half pairs, positions from pos0)', () => {
  const n = 4, heads = 3, hd = 16, pos0 = 1000;
  const x = floats(n * heads * hd);
  const inv = ops.ropeInvFreq(hd, 10000, null);
  const want = new Float64Array(x.length);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * hd;
      for (let i = 0; i < hd / 2; i++) {
        const angle = Math.fround((pos0 + t) * inv[i]);  // float32, as transformers computes it
        const a = x[o + i], b = x[o + i + hd / 2];
        want[o + i] = a * Math.cos(angle) - b * Math.sin(angle);
        want[o + i + hd / 2] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  }
  close(ops.rope(x, n, heads, hd, pos0, inv), want, () => 1e-6, 'rope');
});

test('rope inverse frequencies: default and llama3 scaling', () => {
  for (const [hd, theta] of [[8, 10000], [128, 500000], [64, 1e6]]) {
    const want = Array.from({ length: hd / 2 }, (_, i) => 1 / theta ** ((2 * i) / hd));
    close(ops.ropeInvFreq(hd, theta, null), want, (i) => 1e-6 * want[i], `inv_freq hd=${hd}`);
  }
  // Llama 3.1's values: the low, medium and high bands all occur at head_dim 128.
  const s = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
  const base = Array.from({ length: 64 }, (_, i) => 1 / 500000 ** ((2 * i) / 128));
  const want = base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < s.originalMaxPositions / s.highFreqFactor) return f;
    if (wavelen > s.originalMaxPositions / s.lowFreqFactor) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * f / s.factor + smooth * f;
  });
  const got = ops.ropeInvFreq(128, 500000, s);
  close(got, want, (i) => 1e-5 * want[i], 'llama3 inv_freq');
  assert.ok(want.some((f, i) => f !== base[i] && f !== base[i] / 8), 'the medium band is exercised');
});

test('swiglu', () => {
  const gate = floats(257, 8), up = floats(257, 2);
  gate[0] = 90; gate[1] = -90;  // exp overflow must not give NaN
  const want = Array.from(gate, (g, i) => (g / (1 + Math.exp(-g))) * up[i]);
  close(ops.swiglu(gate, up), want, (i) => 1e-6 * (1 + Math.abs(want[i])), 'swiglu');
});

for (const [n, pos0, nHeads, nKvHeads, headDim, blockSize, skipBlocks] of [
  [3, 10, 8, 2, 16, 4, 2],     // prefill tail across blocks, GQA 4:1, pages out of order
  [1, 37, 4, 4, 8, 32, 0],     // decode, MHA, one block
  [16, 100, 8, 1, 64, 16, 3],  // large enough to run threaded, MQA
] as const) {
  test(`attention n=${n} pos0=${pos0} heads=${nHeads}/${nKvHeads} hd=${headDim} block=${blockSize}`, () => {
    const positions = pos0 + n;
    const q = floats(n * nHeads * headDim, 2);
    const keys = floats(positions * nKvHeads * headDim, 2);
    const values = floats(positions * nKvHeads * headDim);
    const want = new Float64Array(n * nHeads * headDim);
    const group = nHeads / nKvHeads;
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / group), qo = (t * nHeads + h) * headDim;
        const scores: number[] = [];
        for (let p = 0; p <= pos0 + t; p++) {
          let s = 0;
          for (let d = 0; d < headDim; d++) s += q[qo + d] * keys[(p * nKvHeads + kvh) * headDim + d];
          scores.push(s / Math.sqrt(headDim));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < headDim; d++) {
          let o = 0;
          for (let p = 0; p < e.length; p++) o += (e[p] / sum) * values[(p * nKvHeads + kvh) * headDim + d];
          want[qo + d] = o;
        }
      }
    }
    const got = ops.attention({ q, keys, values, n, pos0, nHeads, nKvHeads, headDim, blockSize, skipBlocks });
    close(got, want, () => 2e-6, 'attention');
  });
}

test('ops refuse malformed arguments', () => {
  assert.throws(() => ops.matmul(new Float32Array(3), 1, new Uint8Array(12), 'F32', 1, 4, null), /x must hold 4 floats/);
  assert.throws(() => ops.matmul(new Float32Array(4), 1, new Uint8Array(12), 'F32', 1, 4, null), /wrong byte length/);
  assert.throws(() => ops.matmul(new Float32Array(4), 1, new Uint8Array(16), 'Q8' as WeightDtype, 1, 4, null), /dtype must be F32, F16 or BF16/);
  assert.throws(() => ops.embed(new Uint8Array(16), 'F32', 2, 2, Int32Array.of(2)), /token id out of range/);
});
