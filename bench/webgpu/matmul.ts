// The WebGPU engine's tiled matmul (webview/gpu/ops/matmul.wgsl) against its first, untiled kernel
// (matmul-naive.wgsl), in headless Chromium on whatever WebGPU adapter it finds (on the build
// machine: SwiftShader, a CPU rasterizer, so the ratios say little about a real GPU).
//   node --import tsx bench/webgpu/matmul.ts [--reps 5]
// Shapes: a decode step (1 row) and a prefill chunk (64 rows) of Qwen2.5-0.5B's q and MLP
// projections. Per shape, each kernel runs a batch of dispatches per repetition, interleaved;
// the figure is the naive kernel's median over the tiled one's. Both outputs must agree to 1e-4.
// Writes bench/results/webgpu-matmul-<YYYY-MM-DD>.json (adapter, date, commit, ratios).

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openGpuPage } from '../../test/webview/gpu-harness';
import type { Shape } from './matmul-page';

const repo = resolve(import.meta.dirname, '../..');
const reps = Number(process.argv[process.argv.indexOf('--reps') + 1] ?? 5) || 5;
const shapes: Shape[] = [
  { name: 'decode, q_proj', n: 1, m: 896, k: 896 },
  { name: 'decode, gate_proj', n: 1, m: 4864, k: 896 },
  { name: 'prefill 64, q_proj', n: 64, m: 896, k: 896 },
  { name: 'prefill 64, gate_proj', n: 64, m: 4864, k: 896 },
];

async function main(): Promise<void> {
  const gpu = await openGpuPage({ script: 'bench/webgpu/matmul-page.ts', global: 'gpuBench' });
  try {
    const run = await gpu.page.evaluate(([s, r]) => window.gpuBench.matmul(s, r, 4), [shapes, reps] as const);
    for (const r of run.results) {
      console.log(`${r.name.padEnd(24)} n=${r.n} m=${r.m} k=${r.k}: tiled ${r.speedup.toFixed(2)}x the naive kernel's speed (outputs agree to ${r.maxRelativeDifference.toExponential(1)})`);
      if (!(r.maxRelativeDifference <= 1e-4)) throw new Error(`${r.name}: the kernels disagree (${r.maxRelativeDifference})`);
    }
    const date = new Date().toISOString().slice(0, 10);
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim();
    const out = join(repo, 'bench/results', `webgpu-matmul-${date}.json`);
    mkdirSync(join(repo, 'bench/results'), { recursive: true });
    writeFileSync(out, JSON.stringify({ benchmark: 'webgpu-matmul', adapter: run.adapter, browser: 'headless Chromium (--enable-unsafe-webgpu)', date, commit, reps, dispatchesPerRep: 4, ratio: 'naive median time / tiled median time', results: run.results }, null, 2) + '\n');
    console.log(`wrote ${out}`);
  } finally {
    await gpu.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
