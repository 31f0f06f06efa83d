// Opens a model folder for the WebGPU engine: config.json (the same parser as the native engine),
// the end-of-sequence ids, the weights streamed to the GPU, and the forward pass built over them.

import { parseConfig } from '../../src/model/config';
import { ModelError } from '../../src/model/errors';
import type { ModelArch } from '../../src/model/native';
import type { Gpu } from './device';
import type { ModelFiles } from './files';
import { Kernels } from './kernel';
import { GpuModel } from './model';
import { MAX_HEAD_DIM } from './ops/attention';
import { loadWeights, type WeightProgress } from './weights';

export interface LoadedModel {
  model: GpuModel;
  arch: ModelArch;
  /** Token ids that end generation (config.json or generation_config.json's eos_token_id). */
  eosIds: number[];
  /** Bytes of weights on the GPU. */
  weightBytes: number;
}

export interface LoadOptions {
  /** 0: the model's max_position_embeddings. */
  contextTokens: number;
  /** Rows per prefill submission (default 64). */
  maxChunk?: number;
  /** Positions per KV block, the unit of sparse selection (default 32). */
  kvBlockSize?: number;
}

export async function loadModel(gpu: Gpu, files: ModelFiles, options: LoadOptions, progress: WeightProgress): Promise<LoadedModel> {
  const configName = files.describe('config.json');
  const configText = await files.readText('config.json');
  if (configText === null) throw new ModelError(configName, 'missing: a model folder needs config.json');
  const arch = parseConfig(parseJson(configText, configName), configName);
  if (arch.headDim > MAX_HEAD_DIM) throw new ModelError(configName, `head_dim ${arch.headDim} is larger than the WebGPU engine supports (${MAX_HEAD_DIM})`);

  const eosIds = await readEosIds(files, parseJson(configText, configName));

  const contextTokens = options.contextTokens === 0 ? arch.maxPositions : Math.min(options.contextTokens, arch.maxPositions);
  const kernels = new Kernels(gpu.device);
  const weights = await loadWeights(kernels, arch, files, progress);
  try {
    const model = await GpuModel.create(kernels, arch, weights, { contextTokens, maxChunk: options.maxChunk ?? 64, kvBlockSize: options.kvBlockSize ?? 32 });
    const weightBytes = [...weights.values()].reduce((a, t) => a + t.buffer.size, 0);
    return { model, arch, eosIds: [...new Set(eosIds)], weightBytes };
  } catch (e) {
    for (const t of weights.values()) t.buffer.destroy();
    throw e;
  }
}

function parseJson(text: string, fileName: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelError(fileName, `not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Ids that end generation, as the native engine's tokenizer finds them: eos_token_id of
 * config.json and generation_config.json, and tokenizer_config.json's eos_token looked up in
 * tokenizer.json's added tokens.
 */
async function readEosIds(files: ModelFiles, config: unknown): Promise<number[]> {
  const ids = eosOf(config);
  const generationText = await files.readText('generation_config.json');
  if (generationText !== null) ids.push(...eosOf(parseJson(generationText, files.describe('generation_config.json'))));
  const tokenizerConfigText = await files.readText('tokenizer_config.json');
  if (tokenizerConfigText === null) return ids;
  const eos = (parseJson(tokenizerConfigText, files.describe('tokenizer_config.json')) as { eos_token?: unknown } | null)?.eos_token;
  const content = typeof eos === 'string' ? eos : (eos as { content?: unknown } | null)?.content;
  if (typeof content !== 'string') return ids;
  const tokenizerText = await files.readText('tokenizer.json');
  if (tokenizerText === null) return ids;
  const added = (parseJson(tokenizerText, files.describe('tokenizer.json')) as { added_tokens?: unknown } | null)?.added_tokens;
  if (!Array.isArray(added)) return ids;
  for (const t of added as { id?: unknown; content?: unknown }[]) {
    if (t?.content === content && Number.isInteger(t.id)) ids.push(t.id as number);
  }
  return ids;
}

function eosOf(json: unknown): number[] {
  const v = (json as { eos_token_id?: unknown } | null)?.eos_token_id;
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => Number.isInteger(x) && (x as number) >= 0);
}
