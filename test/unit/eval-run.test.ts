// The eval harness prefills each task's prompt once and decodes every run from a fork of it:
// on stories260K that gives exactly the runs of prefilling again (ids, every step's selection
// and δ, counters) and so the same outcomes, leaves the prefilled sequence as it was and frees
// every KV block it took.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readModelSpec } from '../../src/model/loader';
import { TextTokenizer } from '../../src/model/tokenizer';
import { decode, decodeFrom, prefill, type DecodeRun } from '../../src/eval/decode';
import { generateTasks } from '../../src/eval/generators';
import { runEval, runTask, taskPrompt, type EvalVariant, type PromptDecoder } from '../../src/eval/run';
import { parseAttentionSettings, type AttentionMode } from '../../src/trace/attention';
import { STORIES_DIR, loadAddon } from '../native/helpers';

const model = loadAddon().loadModel(readModelSpec(STORIES_DIR, { threads: 1, kvBlockSize: 16 }));
const tokenizer = TextTokenizer.load(STORIES_DIR);
const countTokens = (t: string) => tokenizer.encode(t, { addSpecialTokens: false }).length;
// Prompts of about 300 tokens: 19 blocks, so a 1/4 budget leaves most of them out.
const tasks = generateTasks({ kinds: ['kv-retrieval', 'passkey'], lengths: [300], count: 1, seed: 5, countTokens });
const variants: EvalVariant[] = (['prhs', 'quest', 'streaming'] as AttentionMode[]).map((mode) => ({
  mode, budget: 0.25, settings: parseAttentionSettings({ mode, budget: 0.25, window: 16, keyBound: mode === 'prhs' ? 'int8' : 'minmax' }),
}));
const MAX_NEW = 8;
const stopIds = [...tokenizer.eosIds];
const text = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });

/** A decoder that keeps every run it makes. */
function recording(decoder: PromptDecoder): { decoder: PromptDecoder; runs: DecodeRun[] } {
  const runs: DecodeRun[] = [];
  return { runs, decoder: (a, o) => { const r = decoder(a, o); runs.push(r); return r; } };
}

test('runs decoded from a fork of the prefilled prompt equal runs that prefill again, and the outcomes too', () => {
  const report = runEval(model, tokenizer, tasks, { variants, maxNewTokens: MAX_NEW, contextTokens: 512 });
  assert.equal(report.skipped.length, 0);
  assert.equal(report.outcomes.length, tasks.length * (1 + variants.length));
  let sparseSteps = 0;
  for (const task of tasks) {
    const prompt = tokenizer.encode(taskPrompt(task), { addSpecialTokens: true });
    const again = recording((a, o) => decode(model, prompt, a, o));
    const expected = runTask(task, prompt.length, again.decoder, { variants, maxNewTokens: MAX_NEW, stopIds, text });

    const prefilled = prefill(model, prompt);
    const before = model.exportKv(prefilled.seq, 0, prompt.length - 1);
    const forked = recording((a, o) => decodeFrom(model, prefilled, a, o));
    const outcomes = runTask(task, prompt.length, forked.decoder, { variants, maxNewTokens: MAX_NEW, stopIds, text });
    assert.equal(model.sequenceLength(prefilled.seq), prompt.length - 1);
    assert.deepEqual(model.exportKv(prefilled.seq, 0, prompt.length - 1), before, `${task.id}: the forks changed the prefilled prompt`);
    model.freeSequence(prefilled.seq);

    assert.equal(forked.runs.length, 1 + 2 * variants.length);
    assert.deepEqual(forked.runs, again.runs, `${task.id}: a forked run differs`);
    assert.deepEqual(outcomes, expected);
    assert.deepEqual(report.outcomes.filter((x) => x.taskId === task.id), expected, `${task.id}: runEval's outcomes differ`);
    for (const r of forked.runs) sparseSteps += r.steps.filter((s) => s.layers.flat().some((h) => (h.delta ?? 0) > 0)).length;
  }
  assert.ok(sparseSteps > 0, 'no step dropped any attention mass: the comparison would not see a wrong selection');
  assert.equal(model.stats().kvBlocksInUse, 0, 'KV blocks left in use after the runs');
});

test('every task is timed and reported once, a skipped one too', () => {
  const seen: string[] = [];
  const report = runEval(model, tokenizer, tasks, {
    variants: variants.slice(0, 1), maxNewTokens: 4, contextTokens: 300,
    onTask: (done, total, t) => seen.push(`${done}/${total} ${t.taskId} ${t.skipped}`),
  });
  const lengths = tasks.map((t) => tokenizer.encode(taskPrompt(t), { addSpecialTokens: true }).length);
  assert.deepEqual(seen, tasks.map((t, i) => `${i + 1}/${tasks.length} ${t.id} ${lengths[i] + 4 > 300}`));
  assert.ok(report.skipped.length > 0, 'no task was long enough to be skipped');
  assert.deepEqual(report.timings.map((t) => t.promptTokens), lengths);
  for (const t of report.timings) assert.ok(t.skipped ? t.decodeSeconds === 0 : t.decodeSeconds > 0);
});
