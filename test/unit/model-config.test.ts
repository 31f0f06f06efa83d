import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/model/config';
import { ModelError } from '../../src/model/errors';

const stories = JSON.parse(readFileSync('../shared/models/stories260K/hf/config.json', 'utf8'));

function rejects(json: unknown, pattern: RegExp): void {
  assert.throws(() => parseConfig(json, 'm/config.json'), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.match(e.message, /^m\/config\.json: /);
    assert.match(e.message, pattern);
    return true;
  });
}

test('stories260K: Llama 2 shape, tied embeddings, no scaling', () => {
  const a = parseConfig(stories, 'config.json');
  assert.deepEqual(a, {
    hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8,
    vocabSize: 512, maxPositions: 512, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null,
    attentionBias: false, tieEmbeddings: true,
  });
});

test('llama3 rope scaling from rope_scaling (type or rope_type) and from rope_parameters', () => {
  const scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const expected = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
  assert.deepEqual(parseConfig({ ...stories, rope_scaling: { ...scaling, type: 'llama3' } }, 'c').ropeScaling, expected);
  assert.deepEqual(parseConfig({ ...stories, rope_scaling: { ...scaling, rope_type: 'llama3' } }, 'c').ropeScaling, expected);
  const v5 = { ...stories, rope_theta: undefined, rope_parameters: { ...scaling, rope_type: 'llama3', rope_theta: 500000 } };
  const a = parseConfig(v5, 'c');
  assert.deepEqual(a.ropeScaling, expected);
  assert.equal(a.ropeTheta, 500000);
  assert.equal(parseConfig({ ...stories, rope_parameters: { rope_type: 'default', rope_theta: 7 } }, 'c').ropeScaling, null);
});

test('qwen2 implies q/k/v bias; Llama reads attention_bias', () => {
  const qwen = { ...stories, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', sliding_window: 4096, use_sliding_window: false };
  assert.equal(parseConfig(qwen, 'c').attentionBias, true);
  assert.equal(parseConfig({ ...stories, attention_bias: true }, 'c').attentionBias, true);
  rejects({ ...qwen, use_sliding_window: true }, /use_sliding_window/);
});

test('mistral: head_dim key wins over hidden/heads; sliding_window must be null', () => {
  const mistral = { ...stories, architectures: ['MistralForCausalLM'], model_type: 'mistral', head_dim: 16, sliding_window: null };
  assert.equal(parseConfig(mistral, 'c').headDim, 16);
  rejects({ ...mistral, sliding_window: 128 }, /sliding_window 128 is not supported/);
});

test('num_key_value_heads defaults to num_attention_heads', () => {
  assert.equal(parseConfig({ ...stories, num_key_value_heads: undefined }, 'c').numKvHeads, 8);
});

test('unsupported or malformed configs are refused naming the file and key', () => {
  rejects({ ...stories, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }, /model_type "gpt2" is not supported/);
  rejects({ ...stories, architectures: ['Qwen3ForCausalLM'], model_type: undefined }, /architecture "Qwen3ForCausalLM" is not supported/);
  rejects({ ...stories, model_type: 'qwen2' }, /does not match model_type/);
  rejects({ ...stories, hidden_size: undefined }, /missing "hidden_size"/);
  rejects({ ...stories, num_key_value_heads: 3 }, /not a multiple of num_key_value_heads/);
  rejects({ ...stories, hidden_act: 'gelu' }, /hidden_act "gelu"/);
  rejects({ ...stories, rope_scaling: { type: 'yarn', factor: 4 } }, /rope scaling type "yarn" is not supported/);
  rejects({ ...stories, vocab_size: -1 }, /"vocab_size" must be a positive integer/);
  rejects([1, 2], /not a JSON object/);
});

test('the transformers 5 fixture configs (rope_parameters, layer_types, null sliding_window)', () => {
  const read = (name: string) => parseConfig(JSON.parse(readFileSync(`test/fixtures/models/${name}/config.json`, 'utf8')), name);
  const llama3 = read('llama3');
  assert.deepEqual(llama3.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
  assert.equal(llama3.ropeTheta, 500000);
  assert.equal(llama3.tieEmbeddings, false);
  const qwen2 = read('qwen2');
  assert.deepEqual([qwen2.attentionBias, qwen2.tieEmbeddings, qwen2.numKvHeads, qwen2.ropeTheta, qwen2.ropeScaling], [true, true, 1, 1e6, null]);
  const mistral = read('mistral');
  assert.deepEqual([mistral.headDim, mistral.numHeads, mistral.hiddenSize, mistral.attentionBias], [16, 8, 64, false]);
});
