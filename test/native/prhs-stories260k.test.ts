// PrHS and its baselines on stories260K's real attention, through the addon: the certificate
// holds on every step, expansion meets the target, a whole-context budget gives the dense
// result, and the trace built from a run validates against its schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readModelSpec } from '../../src/model/loader';
import { decode, totalVariation } from '../../src/eval/decode';
import { ATTENTION_DEFAULTS, type AttentionMode, type AttentionSettings, type KeyBound } from '../../src/trace/attention';
import { buildTrace, textManifest } from '../../src/trace/build';
import { validateTrace } from '../../src/trace/validate';
import { STORIES_DIR, loadAddon } from './helpers';

const addon = loadAddon();
const BLOCK = 16;
const model = addon.loadModel(readModelSpec(STORIES_DIR, { threads: 1, kvBlockSize: BLOCK }));
// A 300-token story: the model's own greedy continuation of "Once upon a time" (BOS first).
const prompt = [1, 403, 407, 261, 378, ...decode(model, [1, 403, 407, 261, 378], null, { maxNewTokens: 295 }).ids];
const dense = decode(model, prompt, null, { maxNewTokens: 40, keepProbs: true });
const MODES: AttentionMode[] = ['prhs', 'quest', 'oracle', 'streaming'];
const BOUNDS: KeyBound[] = ['minmax', 'int8', 'int4'];

function settings(x: Partial<AttentionSettings>): AttentionSettings {
  return { ...ATTENTION_DEFAULTS, window: 32, ...x };
}

test('δ ≤ δ̂ on every step and KV head of the real attention, every mode, key bound and budget', () => {
  let checked = 0;
  for (const mode of MODES) {
    for (const keyBound of mode === 'oracle' ? ['minmax' as const] : BOUNDS) {
      for (const budget of [0.1, 0.25]) {
        const run = decode(model, prompt, settings({ mode, keyBound, budget, strict: true, audit: true }), { maxNewTokens: 40, forced: dense.ids });
        assert.equal(run.steps.length, 40);
        for (const s of run.steps) {
          for (const [l, heads] of s.layers.entries()) {
            for (const [h, x] of heads.entries()) {
              assert.ok(x.delta !== null && x.deltaHat !== null, `${mode} step ${s.step} layer ${l} head ${h}: not certified/audited`);
              assert.ok(x.delta <= x.deltaHat + 1e-9, `${mode}/${keyBound}/${budget} step ${s.step} layer ${l} head ${h}: δ ${x.delta} > δ̂ ${x.deltaHat}`);
              checked++;
            }
          }
        }
      }
    }
  }
  assert.ok(checked >= 20 * 40 * 20);
});

test('PrHS: after expansion δ̂ ≤ δ_target, and the exact δ too, on certified steps', () => {
  for (const keyBound of BOUNDS) {
    for (const deltaTarget of [0.05, 0.01]) {
      const run = decode(model, prompt, settings({ mode: 'prhs', keyBound, deltaTarget, budget: 0.1, audit: true }), { maxNewTokens: 40, forced: dense.ids });
      let certified = 0;
      for (const x of run.steps.flatMap((s) => s.layers.flat())) {
        if (x.deltaHat === null) continue;
        certified++;
        assert.ok(x.deltaHat <= deltaTarget, `${keyBound}: δ̂ ${x.deltaHat} above ${deltaTarget}`);
        assert.ok(x.delta! <= deltaTarget);
      }
      assert.ok(certified > 0);
      assert.ok(run.counters!.expanded > 0, `${keyBound}: a 10% budget never needed expansion`);
    }
  }
});

test('with the budget set to the whole context every mode gives the dense result', () => {
  for (const mode of ['dense', ...MODES] as AttentionMode[]) {
    const run = decode(model, prompt, settings({ mode, budget: 1, audit: true }), { maxNewTokens: 40, keepProbs: true });
    assert.deepEqual(run.ids, dense.ids, `${mode}: tokens differ from dense`);
    const worst = Math.max(...run.probs.map((p, i) => totalVariation(p, dense.probs[i])));
    assert.ok(worst < 1e-4, `${mode}: next-token distributions differ by TV ${worst}`);
    assert.equal(run.counters!.entriesRead, run.counters!.entriesContext, `${mode}: did not read every entry`);
  }
});

test('a 25% budget reads about a quarter of the context and scores less with PrHS than Quest', () => {
  const quest = decode(model, prompt, settings({ mode: 'quest' }), { maxNewTokens: 40, forced: dense.ids }).counters!;
  const prhs = decode(model, prompt, settings({ mode: 'prhs', tau: 0.3, maxReuse: 64, layerGroup: 5, certifyEvery: 32 }), { maxNewTokens: 40, forced: dense.ids }).counters!;
  assert.equal(quest.scoringPasses, 40 * 20);
  assert.ok(quest.entriesRead / quest.entriesContext < 0.3);
  assert.ok(prhs.scoringPasses < quest.scoringPasses / 4, `PrHS scored ${prhs.scoringPasses} times, Quest ${quest.scoringPasses}`);
});

test('the trace of a PrHS run validates against its schema and maps every block to lines', () => {
  const attention = settings({ mode: 'prhs', audit: true });
  const run = decode(model, prompt, attention, { maxNewTokens: 20 });
  // Lines of the prompt text: a token starts a new line after a "\n" token (id 13 in this vocabulary is <0x0A>).
  let line = 1;
  const lineOfToken = prompt.map((id) => (id === 13 ? line++ : line));
  const trace = buildTrace({
    model: { name: 'stories260K', numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8 },
    kvBlockSize: BLOCK, attention, promptTokens: prompt.length,
    manifest: textManifest('<story>', lineOfToken, BLOCK),
    steps: run.steps, tokens: run.ids.map((id) => ({ id, text: String(id) })),
  });
  assert.deepEqual(validateTrace(JSON.parse(JSON.stringify(trace))), []);
  assert.equal(trace.manifest.length, Math.ceil(prompt.length / BLOCK));
  assert.ok(trace.summary.scoringPassesPerToken > 0 && trace.summary.effectiveBudget < 1);
  const sources = new Set(trace.steps.flatMap((s) => s.layers.flatMap((l) => l.heads.map((h) => h.source))));
  assert.ok(sources.has('scored') && sources.has('reused'), `sources seen: ${[...sources].join(', ')}`);
});

test('bad attention settings are refused by the addon with the field named', () => {
  assert.throws(() => model.setAttention({ ...settings({}), mode: 'fast' as AttentionMode }), /attention\.mode must be dense, prhs/);
  assert.throws(() => model.setAttention({ ...settings({}), tau: 3 }), /attention\.tau must lie in/);
  const partial = { mode: 'prhs' } as unknown as AttentionSettings;
  assert.throws(() => model.setAttention(partial), /attention\.budget is missing/);
  model.setAttention(null);
  assert.deepEqual(decode(model, prompt, null, { maxNewTokens: 5 }).ids, dense.ids.slice(0, 5));
});

test('depth schedule: from layer l_s on, scored blocks lie in [P_l(t), t] apart from sinks and window', () => {
  const s = settings({ mode: 'prhs', depthSchedule: true, depthStartLayer: 2, depthPhi: 0.5, depthAlpha: 1, deltaTarget: 1, tau: 1, audit: true, strict: true });
  const run = decode(model, prompt, s, { maxNewTokens: 12, forced: dense.ids });
  let checked = 0;
  for (const step of run.steps) {
    const context = prompt.length + step.step; // tokens in the cache at this step
    for (const [l, heads] of step.layers.entries()) {
      const floor = l < 2 ? 0 : Math.floor((1 - 0.5 ** ((l - 2) / 3)) * context);
      const windowStart = Math.floor(Math.max(0, context - 32) / BLOCK);
      for (const h of heads) {
        assert.equal(h.source, 'scored');
        assert.ok(h.delta! <= h.deltaHat! + 1e-9);
        for (const b of h.blocks) {
          const allowed = b === 0 || b >= windowStart || (b + 1) * BLOCK > floor;
          assert.ok(allowed, `layer ${l} step ${step.step}: block ${b} lies before P = ${floor}`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 0);
});

test('cross-layer sharing: a group follows its first layer when that layer re-scores', () => {
  const run = decode(model, prompt, settings({ mode: 'prhs', layerGroup: 5, deltaTarget: 1, certifyEvery: 0 }), { maxNewTokens: 30, forced: dense.ids });
  let adoptions = 0;
  for (const step of run.steps) {
    const leader = step.layers[0];
    for (const [h, lead] of leader.entries()) {
      if (lead.source !== 'scored') continue;
      for (let l = 1; l < 5; l++) {
        const follower = step.layers[l][h];
        if (follower.source !== 'shared') continue;
        adoptions++;
        // Same core; the window is the same for every layer, so the sets are equal.
        assert.deepEqual(Array.from(follower.blocks), Array.from(lead.blocks), `step ${step.step} layer ${l} head ${h}`);
      }
    }
  }
  assert.ok(adoptions > 0);
  const c = run.counters!;
  assert.ok(c.scoringPasses < c.selections / 5 + run.steps.length * 4, `${c.scoringPasses} scoring passes for ${c.selections} selections`);
});
