// Builds and runs test/native/prhs-harness.cc (native/prhs compiled with g++, no addon) and
// parses its JSON lines, and bench/gpu/policy_host.cc the same way. Used by the property tests
// and by bench/prhs-tightness.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HarnessRow {
  workload: string;
  mode: string;
  keyBound: string;
  budget: number;
  strict: boolean;
  deltaTarget: number;
  checks: number;
  violations: number;
  worstExcess: number;
  overTarget: number;
  certified: number;
  expanded: number;
  maxOutErr: number;
  meanDelta: number;
  maxDelta: number;
  meanDeltaHat: number;
  ratioMedian: number;
  ratioGeomean: number;
  ratioP90: number;
  effectiveBudget: number;
  scoringPassesPerToken: number;
  certifyPassesPerToken: number;
  summaryBytesPerToken: number;
  keyBytesPerToken: number;
  headDim: number;
  blockSize: number;
  prompt: number;
  steps: number;
}

/** Compiles `main` with native/prhs (no addon) into a temporary folder; returns the executable's path. */
function buildWithPrhs(main: string, name: string): string {
  const exe = join(mkdtempSync(join(tmpdir(), `${name}-`)), name);
  const sources = readdirSync('native/prhs').filter((f) => f.endsWith('.cc') && !f.endsWith('_napi.cc')).map((f) => join('native/prhs', f));
  execFileSync('g++', ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', '-Inative', main, ...sources, '-o', exe], { stdio: 'inherit' });
  return exe;
}

/** Compiles the harness into a temporary folder; returns the executable's path. */
export function buildPrhsHarness(): string {
  return buildWithPrhs('test/native/prhs-harness.cc', 'prhs-harness');
}

export function runPrhsHarness(exe: string, command: 'properties' | 'tightness', env: Record<string, string> = {}): HarnessRow[] {
  const out = execFileSync(exe, [command], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return out.trim().split('\n').map((line) => JSON.parse(line) as HarnessRow);
}

export interface RankingRow { tables: number; tied: number; long_short: number; prefix_mismatches: number; set_mismatches: number; margin_mismatches: number }

/** The harness's `ranking` command: the policy's partial ranking against a full one. */
export function runRankingCheck(exe: string): RankingRow {
  return JSON.parse(execFileSync(exe, ['ranking'], { encoding: 'utf8' })) as RankingRow;
}

export interface ExpansionOrderRow { tables: number; picks: number; tied: number; withNan: number; blockMismatches: number; secondMismatches: number }

/** The harness's `expansion-order` command: the expansion's picks by heap against a pass over every block. */
export function runExpansionOrderCheck(exe: string): ExpansionOrderRow {
  return JSON.parse(execFileSync(exe, ['expansion-order'], { encoding: 'utf8' })) as ExpansionOrderRow;
}

export interface PolicyHostRow { context: number; drift: number; us_per_step: number; us_per_layer: number; scoring_passes: number; selections: number }

/** Builds bench/gpu/policy_host.cc (the policy's host time with an instant device) and runs it once per drift. */
export function runPolicyHost(context: number, drifts: number[], steps: number): PolicyHostRow[] {
  const exe = buildWithPrhs('bench/gpu/policy_host.cc', 'policy_host');
  return drifts.map((d) => JSON.parse(execFileSync(exe, [String(context), String(d), String(steps)], { encoding: 'utf8' })) as PolicyHostRow);
}
