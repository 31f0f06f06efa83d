// Sparse decode attention through the engine protocol and the real engine process: settings
// validated at the boundary, every step's selection returned for the trace, the trace valid.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EngineClient } from '../../src/engine/client';
import { parseReply, parseRequest, ProtocolError } from '../../src/engine/protocol';
import { ATTENTION_DEFAULTS } from '../../src/trace/attention';
import { buildTrace, textManifest } from '../../src/trace/build';
import { validateTrace } from '../../src/trace/validate';
import { buildBundles, ENGINE, STORIES } from './engine-harness';

const golden = JSON.parse(readFileSync('../shared/models/stories260K/golden-transformers.json', 'utf8'));
const generate = { type: 'generate', id: 1, prompt: { ids: [1, 2] }, maxNewTokens: 4, sampling: { temperature: 0, topP: 1, seed: 0 }, stopAtEos: true };

test('protocol: attention settings are filled with defaults and checked, trace is a boolean', () => {
  const r = parseRequest({ ...generate, attention: { mode: 'prhs', tau: 0.5 }, trace: true });
  assert.ok(r.type === 'generate');
  assert.deepEqual(r.attention, { ...ATTENTION_DEFAULTS, mode: 'prhs', tau: 0.5 });
  assert.equal(r.trace, true);
  assert.throws(() => parseRequest({ ...generate, attention: { mode: 'fast' } }), (e: unknown) => e instanceof ProtocolError && /attention\.mode must be one of/.test(e.message));
  assert.throws(() => parseRequest({ ...generate, attention: { budget: 0 } }), /attention\.budget must be > 0/);
  assert.throws(() => parseRequest({ ...generate, trace: 'yes' }), /trace must be a boolean/);
  const reply = { type: 'generated', id: 1, result: { promptTokens: 2, prefilledTokens: 2, ids: [3], text: 'x', finishReason: 'length',
    attention: { settings: { mode: 'prhs' }, counters: { steps: 1, scoringPasses: 1, certifyPasses: 0, certified: 1, expanded: 0, entriesRead: 2, entriesContext: 2 },
      steps: [[[{ blocks: [0], source: 'scored', deltaHat: 0, delta: null, expanded: 0 }]]] } } };
  const parsed = parseReply(reply);
  assert.ok(parsed.type === 'generated' && parsed.result.attention?.steps?.[0][0][0].source === 'scored');
  assert.throws(() => parseReply({ ...reply, result: { ...reply.result, attention: { ...reply.result.attention, steps: [[[{ blocks: [0], source: 'guessed', deltaHat: 0, delta: null, expanded: 0 }]]] } } }), /source must be one of/);
});

let client: EngineClient;
before(async () => {
  await buildBundles();
  client = new EngineClient({ enginePath: ENGINE });
  await client.load({ modelDir: STORIES, kvBlockSize: 16 });
});
after(() => client.dispose());

test('whole-context budget: PrHS through the engine gives the golden tokens; dense mode is the dense path', async () => {
  const ids = { text: golden.greedy_text.repeat(3) };
  const expected = (await client.generate({ prompt: ids, maxNewTokens: 24, stopAtEos: false }).result).ids;
  for (const mode of ['prhs', 'quest', 'streaming', 'oracle', 'dense'] as const) {
    const r = await client.generate({ prompt: ids, maxNewTokens: 24, stopAtEos: false, attention: { ...ATTENTION_DEFAULTS, mode, budget: 1 } }).result;
    assert.deepEqual(r.ids, expected, mode);
    assert.equal(r.attention === undefined, mode === 'dense');
  }
});

test('a 25% PrHS generation returns one selection per token that builds a valid trace', async () => {
  const prompt = { text: golden.greedy_text.repeat(4) };
  const attention = { ...ATTENTION_DEFAULTS, mode: 'prhs' as const, window: 32, audit: true };
  const r = await client.generate({ prompt, maxNewTokens: 20, stopAtEos: false, attention, trace: true }).result;
  const report = r.attention!;
  assert.equal(report.steps!.length, r.ids.length);
  assert.equal(report.counters.steps, r.ids.length);
  assert.ok(r.promptTokens > 250, `prompt of ${r.promptTokens} tokens`);
  assert.ok(report.counters.entriesRead < report.counters.entriesContext * 0.6);
  assert.ok(report.counters.scoringPasses > 0 && report.counters.scoringPasses < 20 * r.ids.length);
  const trace = buildTrace({
    model: { name: 'stories260K', numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8 }, kvBlockSize: 16, attention: report.settings,
    promptTokens: r.promptTokens, manifest: textManifest('<story>', new Array<number>(r.promptTokens).fill(1), 16),
    steps: report.steps!.map((layers) => ({ layers })), tokens: r.ids.map((id) => ({ id, text: '' })),
  });
  assert.deepEqual(validateTrace(JSON.parse(JSON.stringify(trace))), []);
  // Without trace: counters only.
  const plain = await client.generate({ prompt, maxNewTokens: 4, stopAtEos: false, attention }).result;
  assert.equal(plain.attention!.steps, undefined);
});
