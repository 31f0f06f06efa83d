// Runs a task set with dense attention and with each (mode, budget) asked for, and reports per
// mode and budget: accuracy, agreement of the next token with dense (teacher-forced on dense's
// tokens), exact dropped mass (audited), effective budget and scoring passes per token.
// Each task's prompt is prefilled once; the dense run and every variant's runs decode from forks
// of it (copy-on-write KV blocks), which give the same runs as prefilling again each time.
import { performance } from 'node:perf_hooks';
import type { NativeModel } from '../model/native';
import type { TextTokenizer } from '../model/tokenizer';
import type { AttentionMode, AttentionSettings } from '../trace/attention';
import { decodeFrom, prefill, type DecodeOptions, type DecodeRun } from './decode';
import { isCorrect, type EvalTask } from './tasks';

export interface EvalVariant {
  mode: AttentionMode;
  budget: number;
  /** Complete settings (audit is forced on: the report needs the exact δ). */
  settings: AttentionSettings;
}

export interface EvalOptions {
  variants: EvalVariant[];
  maxNewTokens: number;
  /** Largest sequence the model may hold (prompt + generated). */
  contextTokens: number;
  /** After each task (run or skipped), with its timing. */
  onTask?: (done: number, total: number, timing: TaskTiming) => void;
}

/** Wall time of one task on this machine (for progress and the report, never for tests). */
export interface TaskTiming {
  taskId: string;
  promptTokens: number;
  skipped: boolean;
  prefillSeconds: number;
  /** Every decode run of the task (dense and each variant's free and teacher-forced runs). */
  decodeSeconds: number;
}

/** Decodes the task's prompt with `attention` (null: dense). */
export type PromptDecoder = (attention: AttentionSettings | null, options: DecodeOptions) => DecodeRun;

export interface TaskOutcome {
  taskId: string;
  kind: string;
  targetTokens: number;
  promptTokens: number;
  mode: AttentionMode | 'dense-reference';
  budget: number;
  answer: string;
  correct: boolean;
  agreement: number;
  meanDelta: number;
  maxDelta: number;
  effectiveBudget: number;
  scoringPassesPerToken: number;
  certifyPassesPerToken: number;
}

export interface ReportRow {
  mode: string;
  budget: number;
  kind: string;
  targetTokens: number;
  tasks: number;
  accuracy: number;
  agreement: number;
  meanDelta: number;
  maxDelta: number;
  effectiveBudget: number;
  scoringPassesPerToken: number;
  certifyPassesPerToken: number;
}

export interface EvalReport {
  outcomes: TaskOutcome[];
  skipped: { taskId: string; reason: string }[];
  rows: ReportRow[];
  timings: TaskTiming[];
}

/** The prompt every model sees: context, then the question (BOS added by the tokenizer). */
export function taskPrompt(task: EvalTask): string {
  return `${task.context}\n\nQuestion: ${task.question}\nAnswer:`;
}

export function runEval(model: NativeModel, tokenizer: TextTokenizer, tasks: readonly EvalTask[], o: EvalOptions): EvalReport {
  const report: EvalReport = { outcomes: [], skipped: [], rows: [], timings: [] };
  const stopIds = [...tokenizer.eosIds];
  tasks.forEach((task, n) => {
    const prompt = tokenizer.encode(taskPrompt(task), { addSpecialTokens: true });
    const timing: TaskTiming = { taskId: task.id, promptTokens: prompt.length, skipped: false, prefillSeconds: 0, decodeSeconds: 0 };
    if (prompt.length + o.maxNewTokens > o.contextTokens) {
      report.skipped.push({ taskId: task.id, reason: `${prompt.length} prompt tokens + ${o.maxNewTokens} new exceed the context of ${o.contextTokens}` });
      timing.skipped = true;
    } else {
      const start = performance.now();
      const prefilled = prefill(model, prompt);
      const decodeStart = performance.now();
      try {
        report.outcomes.push(...runTask(task, prompt.length, (attention, options) => decodeFrom(model, prefilled, attention, options), {
          variants: o.variants, maxNewTokens: o.maxNewTokens, stopIds, text: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
        }));
      } finally {
        model.freeSequence(prefilled.seq);
      }
      timing.prefillSeconds = (decodeStart - start) / 1000;
      timing.decodeSeconds = (performance.now() - decodeStart) / 1000;
    }
    report.timings.push(timing);
    o.onTask?.(n + 1, tasks.length, timing);
  });
  report.rows = aggregate(report.outcomes);
  return report;
}

/**
 * One task's outcomes: the dense reference, then per variant its free run (answer, accuracy) and
 * its run teacher-forced on dense's tokens (agreement, δ, budget, passes). `decodePrompt` runs
 * the task's prompt, so how the prompt is prefilled (once and forked, or again) is the caller's.
 */
export function runTask(task: EvalTask, promptTokens: number, decodePrompt: PromptDecoder,
  o: { variants: readonly EvalVariant[]; maxNewTokens: number; stopIds: readonly number[]; text: (ids: number[]) => string }): TaskOutcome[] {
  const text = (ids: number[]) => o.text(ids.filter((id) => !o.stopIds.includes(id)));
  const dense = decodePrompt(null, { maxNewTokens: o.maxNewTokens, stopIds: o.stopIds });
  const base = { taskId: task.id, kind: task.kind, targetTokens: task.targetTokens, promptTokens };
  const outcomes: TaskOutcome[] = [{
    ...base, mode: 'dense-reference', budget: 1, answer: text(dense.ids), correct: isCorrect(text(dense.ids), task.answer),
    agreement: 1, meanDelta: 0, maxDelta: 0, effectiveBudget: 1, scoringPassesPerToken: 0, certifyPassesPerToken: 0,
  }];
  for (const v of o.variants) {
    const settings = { ...v.settings, audit: true };
    const free = decodePrompt(settings, { maxNewTokens: o.maxNewTokens, stopIds: o.stopIds });
    const forced = decodePrompt(settings, { maxNewTokens: dense.ids.length, forced: dense.ids });
    const deltas = forced.steps.flatMap((s) => s.layers.flat().map((h) => h.delta ?? 0));
    const c = forced.counters!;
    outcomes.push({
      ...base, mode: v.mode, budget: v.budget, answer: text(free.ids), correct: isCorrect(text(free.ids), task.answer),
      agreement: forced.argmax.filter((t, i) => t === dense.argmax[i]).length / Math.max(1, forced.argmax.length),
      meanDelta: deltas.reduce((a, b) => a + b, 0) / Math.max(1, deltas.length), maxDelta: Math.max(0, ...deltas),
      effectiveBudget: c.entriesRead / Math.max(1, c.entriesContext),
      scoringPassesPerToken: c.scoringPasses / Math.max(1, c.steps), certifyPassesPerToken: c.certifyPasses / Math.max(1, c.steps),
    });
  }
  return outcomes;
}

function aggregate(outcomes: TaskOutcome[]): ReportRow[] {
  const groups = new Map<string, TaskOutcome[]>();
  for (const x of outcomes) {
    const key = JSON.stringify([x.mode, x.budget, x.kind, x.targetTokens]);
    groups.set(key, [...(groups.get(key) ?? []), x]);
  }
  const mean = (xs: TaskOutcome[], f: (x: TaskOutcome) => number) => xs.reduce((s, x) => s + f(x), 0) / xs.length;
  return [...groups.values()].map((xs) => ({
    mode: xs[0].mode, budget: xs[0].budget, kind: xs[0].kind, targetTokens: xs[0].targetTokens, tasks: xs.length,
    accuracy: mean(xs, (x) => (x.correct ? 1 : 0)), agreement: mean(xs, (x) => x.agreement),
    meanDelta: mean(xs, (x) => x.meanDelta), maxDelta: Math.max(...xs.map((x) => x.maxDelta)),
    effectiveBudget: mean(xs, (x) => x.effectiveBudget), scoringPassesPerToken: mean(xs, (x) => x.scoringPassesPerToken),
    certifyPassesPerToken: mean(xs, (x) => x.certifyPassesPerToken),
  }));
}

/** The report's rows as a Markdown table. */
export function reportTable(rows: readonly ReportRow[]): string {
  const f = (x: number, d = 3) => x.toFixed(d);
  return [
    '| mode | budget | task | length | tasks | accuracy | agreement with dense | mean δ | max δ | effective budget | scoring passes / token | certificate passes / token |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.mode} | ${r.budget} | ${r.kind} | ${r.targetTokens} | ${r.tasks} | ${f(r.accuracy)} | ${f(r.agreement)} | ${f(r.meanDelta, 4)} | ${f(r.maxDelta)} | ${f(r.effectiveBudget)} | ${f(r.scoringPassesPerToken, 2)} | ${f(r.certifyPassesPerToken, 2)} |`),
  ].join('\n');
}
