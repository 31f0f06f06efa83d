// Picking the next token from logits: greedy (temperature 0) or temperature + top-p (nucleus)
// sampling driven by our own seeded PRNG, so a seed gives the same tokens on every machine.

export interface SamplingOptions {
  /** 0: greedy (argmax). */
  temperature: number;
  /** Keep the smallest set of most likely tokens whose mass reaches topP, (0, 1]. */
  topP: number;
  seed: number;
}

/** mulberry32: a small, fast 32-bit PRNG; deterministic for a seed, good enough for sampling. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** Index of the largest logit (the first one on ties, like torch.argmax). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export class Sampler {
  private readonly random: SeededRandom;

  constructor(private readonly options: SamplingOptions) {
    if (!(options.temperature >= 0)) throw new RangeError(`temperature must be >= 0, found ${options.temperature}`);
    if (!(options.topP > 0 && options.topP <= 1)) throw new RangeError(`topP must be in (0, 1], found ${options.topP}`);
    this.random = new SeededRandom(options.seed);
  }

  /** The next token id for `logits` (one row of vocabulary size). */
  sample(logits: Float32Array): number {
    if (this.options.temperature === 0) return argmax(logits);
    return sampleTopP(logits, this.options.temperature, this.options.topP, this.random.next());
  }
}

/**
 * Softmax(logits / temperature), keep the most likely tokens until their mass reaches topP,
 * renormalize, and pick with the uniform number `u` in [0, 1).
 */
export function sampleTopP(logits: Float32Array, temperature: number, topP: number, u: number): number {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[i] - max) / temperature);
    sum += probs[i];
  }
  if (topP >= 1) return pick(probs, sum, u, Array.from({ length: n }, (_, i) => i));
  // A token below this probability can never be needed to reach topP (llama2.c's cutoff): the
  // n - 1 others would hold more than topP without it. Sorting only the rest keeps this fast on
  // 150K-token vocabularies.
  const cutoff = ((1 - topP) / (n - 1)) * sum;
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (probs[i] >= cutoff) candidates.push(i);
  // Most likely first (ties: lower id first, for determinism).
  candidates.sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = 0;
  let mass = 0;
  while (kept < candidates.length) {
    mass += probs[candidates[kept]];
    kept++;
    if (mass >= topP * sum) break;
  }
  return pick(probs, mass, u, candidates.slice(0, kept));
}

/** The token of `ids` where the running sum of probs passes u * total. */
function pick(probs: Float64Array, total: number, u: number, ids: number[]): number {
  let target = u * total;
  for (const id of ids) {
    target -= probs[id];
    if (target < 0) return id;
  }
  return ids[ids.length - 1];
}
