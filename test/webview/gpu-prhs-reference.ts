// Builds and runs gpu-prhs-reference.cc: the CPU reference's sparse decode selection
// (native/prhs DecodeAttention, compiled with g++) on given keys and queries.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttentionSettings } from '../../src/trace/attention';
import type { Counters, HeadRecord } from '../../webview/gpu/prhs/decodeAttention';

export interface SelectionShape {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  blockSize: number;
  /** Positions before the first decode step. */
  prompt: number;
  steps: number;
}

export interface SelectionRun {
  steps: { step: number; layers: HeadRecord[][] }[];
  counters: Counters;
}

/** Compiles the reference into a fresh temporary folder; returns the executable. */
export function buildReference(): string {
  const exe = join(mkdtempSync(join(tmpdir(), 'gpu-prhs-')), 'reference');
  const sources = readdirSync('native/prhs').filter((f) => f.endsWith('.cc') && !f.endsWith('_napi.cc')).map((f) => join('native/prhs', f));
  execFileSync('g++', ['-std=c++17', '-O2', '-Inative', 'test/webview/gpu-prhs-reference.cc', ...sources, '-o', exe], { stdio: 'inherit' });
  return exe;
}

/**
 * keys, values [layers][prompt + steps][kvHeads][headDim]; queries [steps][layers][heads][headDim].
 * Step s attends with context prompt + s + 1.
 */
export function runReference(exe: string, p: AttentionSettings, s: SelectionShape, keys: Float32Array, values: Float32Array, queries: Float32Array): SelectionRun {
  const settings = [p.mode, p.keyBound, p.budget, p.budgetTokens, p.sinks, p.window, p.tau, p.maxReuse, p.dilation, p.dilateTop, p.layerGroup,
    p.depthSchedule ? 1 : 0, p.depthStartLayer, p.depthPhi, p.depthAlpha, p.deltaTarget, p.certifyEvery, p.strict ? 1 : 0, p.audit ? 1 : 0].join(' ');
  const header = `${settings}\n${s.layers} ${s.heads} ${s.kvHeads} ${s.headDim} ${s.blockSize} ${s.prompt} ${s.steps}\n`;
  const input = Buffer.concat([Buffer.from(header), ...[keys, values, queries].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))]);
  const lines = execFileSync(exe, { input, encoding: 'utf8', maxBuffer: 64 << 20 }).trim().split('\n').map((l) => JSON.parse(l));
  return { steps: lines.slice(0, -1), counters: lines.at(-1).counters };
}

/**
 * Differences between two runs' records: empty when they read the same blocks from the same
 * source with the same expansion, and δ̂ and δ agree to `relative` (1e-9: the same inputs).
 */
export function selectionDifferences(got: SelectionRun['steps'], ref: SelectionRun['steps'], relative = 1e-9): string[] {
  const out: string[] = [];
  if (got.length !== ref.length) return [`${got.length} steps vs ${ref.length}`];
  got.forEach((step, s) => {
    step.layers.forEach((heads, l) => {
      heads.forEach((a, h) => {
        const b = ref[s].layers[l][h];
        const where = `step ${s}, layer ${l}, KV head ${h}`;
        if (JSON.stringify(a.blocks) !== JSON.stringify(b.blocks)) out.push(`${where}: blocks ${JSON.stringify(a.blocks)} vs ${JSON.stringify(b.blocks)}`);
        if (a.source !== b.source) out.push(`${where}: source ${a.source} vs ${b.source}`);
        if (a.expanded !== b.expanded) out.push(`${where}: expanded ${a.expanded} vs ${b.expanded}`);
        if (a.entriesRead !== b.entriesRead) out.push(`${where}: entries read ${a.entriesRead} vs ${b.entriesRead}`);
        for (const k of ['deltaHat', 'delta'] as const) {
          const [x, y] = [a[k], b[k]];
          if ((x === null) !== (y === null) || (x !== null && y !== null && Math.abs(x - y) > 1e-12 + relative * y)) out.push(`${where}: ${k} ${x} vs ${y}`);
        }
      });
    });
  });
  return out;
}
