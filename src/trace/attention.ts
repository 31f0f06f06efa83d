// Decode-attention settings: which selector runs (PrHS or a baseline) and its parameters.
// The engine protocol carries them on `generate` (optional `attention` field) and the selection
// trace records them. Every field has a default (ATTENTION_DEFAULTS); a request names only what
// it changes. Pure (no Node APIs): the WebGPU engine and the selection panel use it too.

/** dense: every block; prhs: pre-hoc sparse (time reuse, cross-layer sharing, certified δ);
 *  quest: min/max upper-bound scores, top-k every step; oracle: exact top-k (reference only);
 *  streaming: sinks + recency window (StreamingLLM). */
export type AttentionMode = 'dense' | 'prhs' | 'quest' | 'oracle' | 'streaming';
export const ATTENTION_MODES: readonly AttentionMode[] = ['dense', 'prhs', 'quest', 'oracle', 'streaming'];

/** How unselected blocks' scores are bounded for the certificate: per-dimension key min/max of
 *  the block, or a low-bit copy of the keys with per-block scales and exactly bounded rounding. */
export type KeyBound = 'minmax' | 'int8' | 'int4';
export const KEY_BOUNDS: readonly KeyBound[] = ['minmax', 'int8', 'int4'];

export interface AttentionSettings {
  mode: AttentionMode;
  /** KV entries each KV head may read per step, as a fraction of the context (0, 1]. Sinks and
   *  the recency window count inside it. Same definition for every mode. */
  budget: number;
  /** Absolute budget in tokens; overrides `budget` when > 0. */
  budgetTokens: number;
  /** Always-kept first tokens (attention sinks). */
  sinks: number;
  /** Always-kept most recent tokens. */
  window: number;
  /** CIS: reuse the anchor's blocks while cos(q, q_anchor) >= tau ... */
  tau: number;
  /** ... and for at most this many steps after the anchor. */
  maxReuse: number;
  /** CIS dilation: ±r neighbouring blocks around each of the anchor's top-m blocks. */
  dilation: number;
  /** m: how many of the anchor's best blocks are dilated; 0 means a third of the budget's blocks. */
  dilateTop: number;
  /** Cross-layer sharing: groups of this many adjacent layers reuse the group's first layer's
   *  selection (checked by the cosine gate); 1 turns sharing off. */
  layerGroup: number;
  /** Depth schedule P_l(t) = floor((1 - phi^(alpha (l - l_s) / (N - l_s))) t): from layer l_s on,
   *  blocks wholly before P_l(t) (sinks excepted) are not candidates. Off by default. */
  depthSchedule: boolean;
  /** l_s; -1 means half the layers. */
  depthStartLayer: number;
  depthPhi: number;
  depthAlpha: number;
  /** Certified dropped mass: expand the selection while the bound δ̂ exceeds this. */
  deltaTarget: number;
  /** Certify every anchor (scoring) step and, on reuse steps, every this many steps; 0: anchors only. */
  certifyEvery: number;
  /** Certify on every step. */
  strict: boolean;
  /** Also compute the exact dropped mass δ (reads every key: reference and tests only). */
  audit: boolean;
  keyBound: KeyBound;
}

export const ATTENTION_DEFAULTS: Readonly<AttentionSettings> = Object.freeze({
  mode: 'dense',
  budget: 0.25,
  budgetTokens: 0,
  sinks: 4,
  window: 64,
  tau: 0.8,
  maxReuse: 16,
  dilation: 1,
  dilateTop: 0,
  layerGroup: 1,
  depthSchedule: false,
  depthStartLayer: -1,
  depthPhi: 0.5,
  depthAlpha: 1,
  deltaTarget: 0.05,
  certifyEvery: 8,
  strict: false,
  audit: false,
  // Per-dimension min/max bounds add up over the head dimension and give δ̂ near 1 on real
  // attention; the int8 copy is within a few percent of δ (bench/results/prhs-tightness.md).
  keyBound: 'int8',
});

export class AttentionSettingsError extends Error {}

type Check = (v: unknown) => string | null;
const finite = (min: number, max: number, int = false): Check => (v) =>
  typeof v !== 'number' || !Number.isFinite(v) ? 'must be a finite number'
    : int && !Number.isInteger(v) ? 'must be an integer'
      : v < min || v > max ? `must be in [${min}, ${max}]` : null;
const oneOf = (allowed: readonly string[]): Check => (v) =>
  typeof v === 'string' && allowed.includes(v) ? null : `must be one of ${allowed.join(', ')}`;
const boolean: Check = (v) => (typeof v === 'boolean' ? null : 'must be a boolean');

const CHECKS: { [K in keyof AttentionSettings]: Check } = {
  mode: oneOf(ATTENTION_MODES),
  budget: (v) => finite(0, 1)(v) ?? ((v as number) > 0 ? null : 'must be > 0'),
  budgetTokens: finite(0, 2 ** 31, true),
  sinks: finite(0, 2 ** 31, true),
  window: finite(0, 2 ** 31, true),
  tau: finite(-1, 1),
  maxReuse: finite(0, 2 ** 31, true),
  dilation: finite(0, 1024, true),
  dilateTop: finite(0, 2 ** 31, true),
  layerGroup: finite(1, 4096, true),
  depthSchedule: boolean,
  depthStartLayer: finite(-1, 4096, true),
  depthPhi: (v) => finite(0, 1)(v) ?? ((v as number) > 0 && (v as number) < 1 ? null : 'must be in (0, 1)'),
  depthAlpha: finite(0, 1e6),
  deltaTarget: finite(0, 1),
  certifyEvery: finite(0, 2 ** 31, true),
  strict: boolean,
  audit: boolean,
  keyBound: oneOf(KEY_BOUNDS),
};

/** Fills defaults into a partial settings object and validates every field; unknown fields are errors. */
export function parseAttentionSettings(x: unknown): AttentionSettings {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new AttentionSettingsError('attention must be an object');
  const given = x as Record<string, unknown>;
  for (const k of Object.keys(given)) {
    if (!(k in CHECKS)) throw new AttentionSettingsError(`attention.${k} is not a setting (known: ${Object.keys(CHECKS).join(', ')})`);
  }
  const out: Record<string, unknown> = { ...ATTENTION_DEFAULTS };
  for (const [k, check] of Object.entries(CHECKS)) {
    if (given[k] === undefined) continue;
    const problem = check(given[k]);
    if (problem) throw new AttentionSettingsError(`attention.${k} ${problem}`);
    out[k] = given[k];
  }
  return out as unknown as AttentionSettings;
}
