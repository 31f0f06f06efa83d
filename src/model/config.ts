// Reads a Hugging Face config.json into the Llama-family shape the engines run (ModelArch).
// Supported: Llama 2/3.x (rope_scaling "llama3"), Mistral (no sliding window), Qwen2/2.5 (q/k/v
// bias). Anything else is refused with a ModelError naming the file and the key at fault.
// Pure (no Node APIs): the WebGPU engine in the webview imports it too.
//
// Both config layouts transformers writes are accepted: the older `rope_theta` + `rope_scaling`
// keys and transformers 5's `rope_parameters` (which holds rope_theta and the scaling together).

import { ModelError } from './errors';
import type { ModelArch, RopeScalingSpec } from './native';

type Family = 'llama' | 'mistral' | 'qwen2';

const FAMILY_BY_MODEL_TYPE: Record<string, Family> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' };
const FAMILY_BY_ARCHITECTURE: Record<string, Family> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseConfig(json: unknown, fileName: string): ModelArch {
  const fail = (problem: string): never => {
    throw new ModelError(fileName, problem);
  };
  if (!isObject(json)) fail('not a JSON object');
  const c = json as Json;

  const family = readFamily(c, fail);

  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) return fail(`missing "${key}"`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) return fail(`"${key}" must be a positive integer, found ${JSON.stringify(v)}`);
    return v;
  };
  const positive = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return fail(`"${key}" must be a positive number, found ${JSON.stringify(v)}`);
    return v;
  };

  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') fail(`hidden_act "${String(c.hidden_act)}" is not supported (only "silu")`);
  if (c.mlp_bias === true) fail('mlp_bias true is not supported');
  checkNoSlidingWindow(c, family, fail);

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = c.num_key_value_heads === null ? numHeads : int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) fail(`num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  if (c.head_dim === undefined || c.head_dim === null) {
    if (hiddenSize % numHeads !== 0) fail(`hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and there is no "head_dim"`);
  }
  const headDim = c.head_dim === undefined || c.head_dim === null ? hiddenSize / numHeads : int('head_dim');
  if (headDim % 2 !== 0) fail(`head_dim ${headDim} must be even for RoPE`);

  const rope = readRope(c, positive, fail);
  const attentionBias = family === 'qwen2' ? true : c.attention_bias === true;

  return {
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int('vocab_size'),
    maxPositions: int('max_position_embeddings'),
    rmsNormEps: positive('rms_norm_eps', c.rms_norm_eps ?? 1e-6),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    attentionBias,
    tieEmbeddings: c.tie_word_embeddings === true,
  };
}

function readFamily(c: Json, fail: (p: string) => never): Family {
  const modelType = c.model_type;
  const architectures = c.architectures;
  let family: Family | undefined;
  if (typeof modelType === 'string') {
    family = FAMILY_BY_MODEL_TYPE[modelType];
    if (!family) fail(`model_type "${modelType}" is not supported (supported: ${Object.keys(FAMILY_BY_MODEL_TYPE).join(', ')})`);
  }
  if (architectures !== undefined) {
    if (!Array.isArray(architectures) || architectures.length !== 1 || typeof architectures[0] !== 'string') {
      fail(`"architectures" must list exactly one architecture, found ${JSON.stringify(architectures)}`);
    }
    const arch = (architectures as string[])[0];
    const byArch = FAMILY_BY_ARCHITECTURE[arch];
    if (!byArch) fail(`architecture "${arch}" is not supported (supported: ${Object.keys(FAMILY_BY_ARCHITECTURE).join(', ')})`);
    if (family && family !== byArch) fail(`architecture "${arch}" does not match model_type "${String(modelType)}"`);
    family = byArch;
  }
  if (!family) fail('neither "model_type" nor "architectures" says which model this is');
  return family as Family;
}

// A sliding window changes which positions attend to which; we only run full causal attention,
// so a window is accepted only where it can never take effect (at or beyond the context length).
function checkNoSlidingWindow(c: Json, family: Family, fail: (p: string) => never): void {
  if (Array.isArray(c.layer_types) && c.layer_types.some((t) => t !== 'full_attention')) {
    fail('layer_types other than "full_attention" (sliding-window layers) are not supported');
  }
  if (family === 'qwen2') {
    if (c.use_sliding_window === true) fail('use_sliding_window true is not supported');
    return; // Qwen2 ignores sliding_window unless use_sliding_window is set.
  }
  const window = c.sliding_window;
  if (window === undefined || window === null) return;
  const maxPositions = c.max_position_embeddings;
  if (typeof window === 'number' && typeof maxPositions === 'number' && window >= maxPositions) return;
  fail(`sliding_window ${JSON.stringify(window)} is not supported (only null: full attention)`);
}

function readRope(
  c: Json,
  positive: (key: string, v: unknown) => number,
  fail: (p: string) => never,
): { theta: number; scaling: RopeScalingSpec | null } {
  // transformers 5 folds theta and scaling into rope_parameters; older configs use two keys.
  const params = isObject(c.rope_parameters) ? c.rope_parameters : undefined;
  const theta = positive('rope_theta', params?.rope_theta ?? c.rope_theta ?? 10000);
  const scaling = params ?? c.rope_scaling;
  if (scaling === undefined || scaling === null) return { theta, scaling: null };
  if (!isObject(scaling)) return fail(`"rope_scaling" must be an object or null, found ${JSON.stringify(scaling)}`);
  const type = scaling.rope_type ?? scaling.type ?? 'default';
  if (type === 'default') return { theta, scaling: null };
  if (type !== 'llama3') return fail(`rope scaling type "${String(type)}" is not supported (only "llama3")`);
  const key = (k: string) => positive(`rope_scaling.${k}`, scaling[k]);
  const spec: RopeScalingSpec = {
    type: 'llama3',
    factor: key('factor'),
    lowFreqFactor: key('low_freq_factor'),
    highFreqFactor: key('high_freq_factor'),
    originalMaxPositions: key('original_max_position_embeddings'),
  };
  if (spec.highFreqFactor <= spec.lowFreqFactor) fail('rope_scaling.high_freq_factor must be larger than low_freq_factor');
  return { theta, scaling: spec };
}
