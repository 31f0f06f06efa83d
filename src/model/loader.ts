// Reads a Hugging Face model folder (config.json + model.safetensors, or shards listed by
// model.safetensors.index.json) into the NativeModelSpec the addon loads. Only headers are read
// here; the addon maps the weights itself. Every problem is a ModelError naming the file.

import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfig } from './config';
import { ModelError } from './errors';
import type { ModelArch, NativeModelSpec, NativeTensorSpec } from './native';
import { parseSafetensorsHeader, safetensorsHeaderSize, type SafetensorsTensor } from './safetensors';
import { selectTensors } from './tensors';

export interface LoadOptions {
  /** Tokens per KV-cache block (default 32). */
  kvBlockSize?: number;
  /** Matrix worker threads (default 0: one per core). */
  threads?: number;
  /** Context actually used (default 0: the model's max_position_embeddings). */
  contextTokens?: number;
}

export function readModelArch(dir: string): ModelArch {
  const file = join(resolve(dir), 'config.json');
  if (!existsSync(file)) {
    const what = existsSync(dir) && statSync(dir).isDirectory() ? 'missing: a model folder needs config.json' : 'the model folder does not exist';
    throw new ModelError(file, what);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelError(file, `not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, file);
}

export function readModelSpec(dir: string, options: LoadOptions = {}): NativeModelSpec {
  const root = resolve(dir);
  const arch = readModelArch(root);
  const { found, weightsName } = readWeightTables(root);
  const tensors: NativeTensorSpec[] = selectTensors(arch, found, weightsName);

  const kvBlockSize = options.kvBlockSize ?? 32;
  if (!Number.isInteger(kvBlockSize) || kvBlockSize < 1) throw new ModelError(root, `kvBlockSize must be a positive integer, found ${kvBlockSize}`);
  const threads = options.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0) throw new ModelError(root, `threads must be a non-negative integer, found ${threads}`);
  const asked = options.contextTokens ?? 0;
  if (!Number.isInteger(asked) || asked < 0) throw new ModelError(root, `contextTokens must be a non-negative integer, found ${asked}`);
  const contextTokens = asked === 0 ? arch.maxPositions : Math.min(asked, arch.maxPositions);
  return { arch, tensors, kvBlockSize, threads, contextTokens };
}

type FoundTensor = SafetensorsTensor & { file: string };

function readWeightTables(root: string): { found: Map<string, FoundTensor>; weightsName: string } {
  const single = join(root, 'model.safetensors');
  const index = join(root, 'model.safetensors.index.json');
  const found = new Map<string, FoundTensor>();
  if (existsSync(index)) {
    const weightMap = readIndex(index);
    const byFile = new Map<string, FoundTensor[]>();
    for (const shard of new Set(weightMap.values())) {
      const file = join(root, shard);
      if (!existsSync(file)) throw new ModelError(file, `missing: listed in ${index}`);
      byFile.set(shard, readTable(file));
    }
    for (const [name, shard] of weightMap) {
      const t = byFile.get(shard)!.find((x) => x.name === name);
      if (!t) throw new ModelError(join(root, shard), `tensor "${name}" is listed in model.safetensors.index.json but not in this file`);
      found.set(name, t);
    }
    return { found, weightsName: index };
  }
  if (existsSync(single)) {
    for (const t of readTable(single)) found.set(t.name, t);
    return { found, weightsName: single };
  }
  throw new ModelError(root, 'no weights: neither model.safetensors nor model.safetensors.index.json is in the folder');
}

function readIndex(index: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(index, 'utf8'));
  } catch (e) {
    throw new ModelError(index, `not valid JSON (${(e as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null) throw new ModelError(index, 'missing "weight_map"');
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    // Shards must be plain file names in the folder: no paths that lead elsewhere.
    if (typeof shard !== 'string' || !/^[\w.-]+\.safetensors$/.test(shard)) {
      throw new ModelError(index, `weight_map entry for "${name}" is not a .safetensors file name in the folder: ${JSON.stringify(shard)}`);
    }
    out.set(name, shard);
  }
  return out;
}

function readTable(file: string): FoundTensor[] {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const first8 = new Uint8Array(8);
    readSync(fd, first8, 0, 8, 0);
    const headerSize = safetensorsHeaderSize(first8, size, file);
    const header = new Uint8Array(headerSize);
    readSync(fd, header, 0, headerSize, 0);
    return parseSafetensorsHeader(header, size, file).tensors.map((t) => ({ ...t, file }));
  } finally {
    closeSync(fd);
  }
}
