// Decoding in process with a chosen decode attention (dense, PrHS or a baseline), recording the
// selection of every step. The prompt's last token is fed as the first decode step, so every
// generated token comes from a step that used the chosen attention.
import type { AttentionSettings } from '../trace/attention';
import type { NativeAttentionCounters, NativeAttentionStep, NativeModel } from '../model/native';
import { argmax } from '../model/sampling';

export interface DecodeOptions {
  maxNewTokens: number;
  /** Feed these tokens instead of the model's choices (teacher forcing); argmax is still recorded. */
  forced?: readonly number[];
  /** Stop after generating one of these (not when forced). */
  stopIds?: readonly number[];
  /** Keep each step's next-token probabilities. */
  keepProbs?: boolean;
}

export interface DecodeRun {
  /** The tokens fed after the prompt: the model's choices, or `forced`. */
  ids: number[];
  /** The argmax of each step's logits. */
  argmax: number[];
  /** Each step's selection (empty with dense attention). */
  steps: NativeAttentionStep[];
  counters: NativeAttentionCounters | null;
  probs: Float32Array[];
}

export function softmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const x of logits) if (x > max) max = x;
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) { out[i] = Math.exp(logits[i] - max); sum += out[i]; }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** A prompt run up to (not including) its last token in its own sequence; runs fork from it. */
export interface Prefilled {
  seq: number;
  /** The prompt's last token: the first decode step's input. */
  last: number;
}

/** Prefills all of `prompt` but its last token. The caller frees `seq` (model.freeSequence). */
export function prefill(model: NativeModel, prompt: readonly number[]): Prefilled {
  if (prompt.length === 0) throw new RangeError('decode: the prompt is empty');
  const seq = model.newSequence();
  try {
    if (prompt.length > 1) model.forward(seq, Int32Array.from(prompt.slice(0, -1)), 'none');
  } catch (e) {
    model.freeSequence(seq);
    throw e;
  }
  return { seq, last: prompt[prompt.length - 1] };
}

/**
 * Decodes from a fork of a prefilled prompt (its KV blocks shared copy-on-write, so the prompt
 * is never recomputed and `prefilled` stays as it was): the same run as decode() on the prompt.
 */
export function decodeFrom(model: NativeModel, prefilled: Prefilled, attention: AttentionSettings | null, options: DecodeOptions): DecodeRun {
  const seq = model.forkSequence(prefilled.seq);
  try {
    return decodeSteps(model, seq, prefilled.last, attention, options);
  } finally {
    model.freeSequence(seq);
  }
}

/** Runs `prompt` then up to maxNewTokens decode steps with `attention` (null: the engine's dense attention). */
export function decode(model: NativeModel, prompt: readonly number[], attention: AttentionSettings | null, options: DecodeOptions): DecodeRun {
  const { seq, last } = prefill(model, prompt);
  try {
    return decodeSteps(model, seq, last, attention, options);
  } finally {
    model.freeSequence(seq);
  }
}

/** The decode steps on `seq`, whose first input is `first`. */
function decodeSteps(model: NativeModel, seq: number, first: number, attention: AttentionSettings | null, options: DecodeOptions): DecodeRun {
  const run: DecodeRun = { ids: [], argmax: [], steps: [], counters: null, probs: [] };
  model.setAttention(attention);
  try {
    let feed = first;
    for (let i = 0; i < options.maxNewTokens; i++) {
      const logits = model.forward(seq, Int32Array.of(feed), 'last');
      const step = model.attentionStep();
      if (step) run.steps.push(step);
      const best = argmax(logits);
      run.argmax.push(best);
      if (options.keepProbs) run.probs.push(softmax(logits));
      feed = options.forced ? options.forced[i] ?? best : best;
      run.ids.push(feed);
      if (!options.forced && options.stopIds?.includes(feed)) break;
    }
    run.counters = model.attentionCounters();
  } finally {
    model.setAttention(null);
  }
  return run;
}

/** Total-variation distance between two distributions. */
export function totalVariation(p: Float32Array, q: Float32Array): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.abs(p[i] - q[i]);
  return s / 2;
}
