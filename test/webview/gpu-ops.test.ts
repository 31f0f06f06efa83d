// Every WebGPU op on its own against a float64 JavaScript reference, on random inputs with shapes
// that leave partial workgroups and tiles (headless Chromium, SwiftShader).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openGpuPage, type GpuPage } from './gpu-harness';
import type { OpCase } from './gpu-page';

/** Deterministic uniform numbers in [-1, 1) (mulberry32). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

const rand = random(7);
// Inputs are exact f32 values, so only the ops themselves round.
const array = (n: number, scale = 1) => Array.from({ length: n }, () => Math.fround(rand() * scale));

function assertClose(actual: number[], expected: number[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(err <= tolerance * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]} (|Δ| ${err})`);
  }
}

describe('WebGPU ops against float64 references', () => {
  let gpu: GpuPage;
  before(async () => (gpu = await openGpuPage()));
  after(async () => gpu?.close());
  const op = (name: string, c: OpCase) => gpu.page.evaluate(([n, x]) => window.gpuTest.op(n, x), [name, c] as const);

  test('embedding', async () => {
    const [rows, d, vocab] = [5, 70, 11];
    const table = array(vocab * d);
    const ids = [3, 0, 10, 3, 7];
    const r = await op('embedding', { rows, pos0: 0, sizes: { d, vocab }, arrays: { ids, table, out: array(rows * d) } });
    assertClose(r.out, ids.flatMap((id) => table.slice(id * d, id * d + d)), 0, 'out');
  });

  test('embedding and matmul with packed 16-bit weights (F16 and BF16, odd sizes)', async () => {
    // Values exactly representable in both formats: multiples of 1/8 in [-4, 4].
    const eighths = (n: number) => Array.from({ length: n }, () => Math.round(rand() * 32) / 8);
    const f16Bits = (v: number) => {
      if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
      const sign = v < 0 ? 0x8000 : 0;
      const e = Math.floor(Math.log2(Math.abs(v)));
      return sign | ((e + 15) << 10) | Math.round((Math.abs(v) / 2 ** e - 1) * 1024);
    };
    const bf16Bits = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16;
    const pack = (h: number[]) => Array.from({ length: Math.ceil(h.length / 2) }, (_, i) => (h[2 * i] | ((h[2 * i + 1] ?? 0) << 16)) >>> 0);
    for (const [bf16, bits] of [[0, f16Bits], [1, bf16Bits]] as const) {
      for (const rows of [3, 1]) {
        const [m, k] = [67, 301];
        const x = array(rows * k);
        const w = eighths(m * k);
        const r = await op('matmul', { rows, pos0: 0, sizes: { m, k, bf16 }, arrays: { x, packed: pack(w.map(bits)), out: array(rows * m) } });
        const expected = Array.from({ length: rows * m }, (_, i) => {
          const [t, j] = [Math.floor(i / m), i % m];
          let s = 0;
          for (let c = 0; c < k; c++) s += x[t * k + c] * w[j * k + c];
          return s;
        });
        assertClose(r.out, expected, 1e-4, `matmul ${bf16 ? 'BF16' : 'F16'}, ${rows} rows`);
      }

      const [d, vocab] = [35, 9];
      const table = eighths(vocab * d);
      const ids = [8, 0, 5];
      const e = await op('embedding', { rows: 3, pos0: 0, sizes: { d, vocab, bf16 }, arrays: { ids, packed: pack(table.map(bits)), out: array(3 * d) } });
      assertClose(e.out, ids.flatMap((id) => table.slice(id * d, id * d + d)), 0, `embedding ${bf16 ? 'BF16' : 'F16'}`);
    }
  });

  test('rmsnorm', async () => {
    const [rows, d, eps] = [3, 150, 1e-5];
    const x = array(rows * d, 3);
    const w = array(d);
    const r = await op('rmsnorm', { rows, pos0: 0, sizes: { d, eps }, arrays: { x, w, out: array(rows * d) } });
    const expected = x.map((_, i) => {
      const t = Math.floor(i / d);
      const row = x.slice(t * d, t * d + d);
      return (w[i % d] * x[i]) / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / d + eps);
    });
    assertClose(r.out, expected, 1e-5, 'out');
  });

  test('matmul: tiled (rows, columns and k each span several tiles, the last partial) and one row', async () => {
    for (const rows of [19, 1]) {
      const [m, k] = [70, 600];
      const x = array(rows * k);
      const w = array(m * k);
      const r = await op('matmul', { rows, pos0: 0, sizes: { m, k }, arrays: { x, w, out: array(rows * m) } });
      const expected = Array.from({ length: rows * m }, (_, i) => {
        const [t, j] = [Math.floor(i / m), i % m];
        let s = 0;
        for (let c = 0; c < k; c++) s += x[t * k + c] * w[j * k + c];
        return s;
      });
      assertClose(r.out, expected, 1e-4, `out (${rows} rows)`);
    }
  });

  test('bias_add, add and swiglu (rows beyond the step are left alone)', async () => {
    const [rows, m] = [2, 67];
    const x = array(3 * m);
    const b = array(m);
    const y = array(3 * m);
    const biased = await op('bias_add', { rows, pos0: 0, sizes: { m }, arrays: { x, b } });
    assertClose(biased.x, x.map((v, i) => (i < rows * m ? v + b[i % m] : v)), 1e-6, 'bias_add');
    const added = await op('add', { rows, pos0: 0, sizes: { d: m }, arrays: { x, y } });
    assertClose(added.x, x.map((v, i) => (i < rows * m ? v + y[i] : v)), 1e-6, 'add');
    const gate = array(3 * m, 8);
    const up = array(3 * m);
    const gated = await op('swiglu', { rows, pos0: 0, sizes: { f: m }, arrays: { gate, up } });
    assertClose(gated.gate, gate.map((g, i) => (i < rows * m ? (g / (1 + Math.exp(-g))) * up[i] : g)), 1e-5, 'swiglu');
  });

  test('rope (rotate_half layout)', async () => {
    const [rows, heads, headDim] = [3, 3, 10];
    const half = headDim / 2;
    const x = array(rows * heads * headDim);
    const table = array(rows * half * 2);
    const r = await op('rope', { rows, pos0: 0, sizes: { heads, headDim }, arrays: { x, table } });
    const expected = x.map((v, i) => {
      const t = Math.floor(i / (heads * headDim));
      const j = i % headDim;
      const base = i - j;
      const f = j % half;
      const [c, s] = [table[(t * half + f) * 2], table[(t * half + f) * 2 + 1]];
      return j < half ? v * c - x[base + j + half] * s : v * c + x[base + j - half] * s;
    });
    assertClose(r.x, expected, 1e-6, 'x');
  });

  test('attention (causal, GQA, more keys than one tile, head_dim above 64)', async () => {
    const [rows, pos0, heads, kvHeads, headDim] = [3, 70, 4, 2, 80];
    const context = pos0 + rows;
    const q = array(rows * heads * headDim);
    const kCache = array(context * kvHeads * headDim);
    const vCache = array(context * kvHeads * headDim);
    const r = await op('attention', { rows, pos0, sizes: { heads, kvHeads, headDim }, arrays: { q, kCache, vCache, out: array(rows * heads * headDim) } });
    const expected: number[] = [];
    for (let t = 0; t < rows; t++) {
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / (heads / kvHeads));
        const keys = pos0 + t + 1;
        const scores = Array.from({ length: keys }, (_, j) => {
          let s = 0;
          for (let d = 0; d < headDim; d++) s += q[(t * heads + h) * headDim + d] * kCache[(j * kvHeads + kvh) * headDim + d];
          return s / Math.sqrt(headDim);
        });
        const max = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - max));
        const sum = p.reduce((a, b) => a + b, 0);
        for (let d = 0; d < headDim; d++) {
          let o = 0;
          for (let j = 0; j < keys; j++) o += (p[j] / sum) * vCache[(j * kvHeads + kvh) * headDim + d];
          expected.push(o);
        }
      }
    }
    assertClose(r.out, expected, 1e-5, 'out');
  });

  test('sparse_attention (listed blocks only, a partial last block, block ids in any order)', async () => {
    const [heads, kvHeads, headDim, blockSize] = [4, 2, 20, 8];
    const pos0 = 37; // context 38: blocks 0..4, the last holding 6 positions
    const context = pos0 + 1;
    const maxBlocks = Math.ceil(64 / blockSize);
    const lists = [[4, 0, 2], [1, 3, 4]];
    const selection = new Array(kvHeads + kvHeads * maxBlocks).fill(0);
    lists.forEach((l, h) => {
      selection[h] = l.length;
      l.forEach((b, i) => (selection[kvHeads + h * maxBlocks + i] = b));
    });
    const q = array(heads * headDim);
    const kCache = array(64 * kvHeads * headDim);
    const vCache = array(64 * kvHeads * headDim);
    const r = await op('sparse_attention', {
      rows: 1, pos0, sizes: { heads, kvHeads, headDim, blockSize, maxBlocks },
      arrays: { q, kCache, vCache, selection, out: array(heads * headDim) },
    });
    const expected: number[] = [];
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / (heads / kvHeads));
      const positions = lists[kvh].flatMap((b) => Array.from({ length: blockSize }, (_, j) => b * blockSize + j)).filter((p) => p < context);
      const scores = positions.map((p) => {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[h * headDim + d] * kCache[(p * kvHeads + kvh) * headDim + d];
        return s / Math.sqrt(headDim);
      });
      const max = Math.max(...scores);
      const w = scores.map((s) => Math.exp(s - max));
      const sum = w.reduce((a, b) => a + b, 0);
      for (let d = 0; d < headDim; d++) expected.push(positions.reduce((a, p, i) => a + (w[i] / sum) * vCache[(p * kvHeads + kvh) * headDim + d], 0));
    }
    assertClose(r.out, expected, 1e-5, 'out');
  });

  test('convert: F16 (normal, subnormal, zero, negative) and BF16 widen exactly', async () => {
    // Halves: 1.0, -2.5, smallest subnormal 2^-24, -0, 65504, 0.1 (≈0.0999755859375), odd count.
    const halves = [0x3c00, 0xc100, 0x0001, 0x8000, 0x7bff, 0x2e66, 0x3555];
    const pack = (v: number[]) => Array.from({ length: Math.ceil(v.length / 2) }, (_, i) => (v[2 * i] | ((v[2 * i + 1] ?? 0) << 16)) >>> 0);
    const f16 = await op('convert', { rows: 1, pos0: 0, sizes: { count: halves.length, bf16: 0 }, arrays: { raw: pack(halves), out: array(halves.length) } });
    assert.deepEqual(f16.out, [1, -2.5, 2 ** -24, -0, 65504, 0.0999755859375, 0.333251953125]);
    const bf16s = [0x3f80, 0xc020, 0x3dcd];
    const bf16 = await op('convert', { rows: 1, pos0: 0, sizes: { count: bf16s.length, bf16: 1 }, arrays: { raw: pack(bf16s), out: array(bf16s.length) } });
    assert.deepEqual(bf16.out, [1, -2.5, 0.10009765625]);
  });
});
