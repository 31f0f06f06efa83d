// Property tests of the PrHS certificate and selectors on synthetic keys (random Gaussian and
// structured: outlier channels, low effective rank, RoPE, slowly drifting queries) at head dims
// 8, 64 and 128, through the standalone harness test/native/prhs-harness.cc built here with g++.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPrhsHarness, runExpansionOrderCheck, runPolicyHost, runPrhsHarness, runRankingCheck, type HarnessRow } from './prhs-harness';

const harness = buildPrhsHarness();
const rows: HarnessRow[] = runPrhsHarness(harness, 'properties');
const label = (r: HarnessRow) => `${r.workload} ${r.mode} ${r.keyBound} budget ${r.budget}`;

test('the harness covered every workload, mode and key bound', () => {
  assert.equal(new Set(rows.map((r) => r.workload)).size, 6);
  assert.deepEqual([...new Set(rows.map((r) => r.mode))].sort(), ['oracle', 'prhs', 'quest', 'streaming']);
  for (const r of rows) assert.ok(r.checks > 0, `${label(r)}: no audited steps`);
});

test('δ ≤ δ̂ on every audited step, for every mode and key bound', () => {
  for (const r of rows) assert.equal(r.violations, 0, `${label(r)}: ${r.violations} of ${r.checks} steps had δ > δ̂ (worst excess ${r.worstExcess})`);
});

test('after expansion δ̂ ≤ δ_target on every certified PrHS step', () => {
  for (const r of rows.filter((x) => x.mode === 'prhs')) {
    assert.equal(r.overTarget, 0, `${label(r)}: ${r.overTarget} certified steps ended above the target`);
    assert.ok(r.maxDelta <= r.deltaTarget, `${label(r)}: exact δ ${r.maxDelta} above the target`);
  }
});

test('with the budget set to the whole context every mode gives the dense result', () => {
  for (const r of rows.filter((x) => x.budget === 1)) {
    assert.equal(r.effectiveBudget, 1, `${label(r)}: read ${r.effectiveBudget} of the context`);
    assert.ok(r.maxOutErr < 1e-5, `${label(r)}: output differs from dense by ${r.maxOutErr}`);
    assert.equal(r.maxDelta, 0, `${label(r)}: dropped mass ${r.maxDelta}`);
  }
});

test('a small budget really drops mass for the baselines (the checks above are not vacuous)', () => {
  for (const r of rows.filter((x) => x.budget < 1 && x.mode !== 'prhs')) {
    assert.ok(r.meanDelta > 0.01, `${label(r)}: mean δ ${r.meanDelta}`);
    assert.ok(r.effectiveBudget < 0.25, `${label(r)}: effective budget ${r.effectiveBudget}`);
  }
});

test('ranking only the blocks the policy reads gives the sets and margins a full ranking gives (ties included)', () => {
  const r = runRankingCheck(harness);
  assert.equal(r.tables, 4000);
  assert.ok(r.tied > r.tables / 2, `only ${r.tied} tables with ties: the check would not exercise the tie order`);
  assert.ok(r.long_short > 500, `only ${r.long_short} long tables with a short ranking: the threshold filter would go unchecked`);
  assert.equal(r.prefix_mismatches, 0);
  assert.equal(r.set_mismatches, 0);
  assert.equal(r.margin_mismatches, 0);
});

test('the expansion picks by heap the blocks a pass over every block picks (ties and NaN bounds included)', () => {
  const r = runExpansionOrderCheck(harness);
  assert.equal(r.tables, 3000);
  assert.ok(r.tied > r.picks / 10, `only ${r.tied} of ${r.picks} picks with a tied runner-up: the tie order would go unchecked`);
  assert.ok(r.withNan > 100, `only ${r.withNan} tables with a NaN bound`);
  assert.equal(r.blockMismatches, 0);
  assert.equal(r.secondMismatches, 0);
});

test('the policy host-time bench runs the CUDA engine\'s selection path: a drifting q scores, a steady one reuses its anchors', () => {
  const [drifting, steady] = runPolicyHost(16384, [1, 0], 8);
  assert.equal(drifting.selections, 8 * 28 * 2);
  assert.ok(drifting.scoring_passes > 0.95 * drifting.selections, `only ${drifting.scoring_passes} of ${drifting.selections} selections scored`);
  assert.ok(steady.scoring_passes < 0.2 * steady.selections, `${steady.scoring_passes} of ${steady.selections} selections scored with q unchanged`);
  assert.ok(drifting.us_per_layer > 0 && steady.us_per_layer > 0);
});
