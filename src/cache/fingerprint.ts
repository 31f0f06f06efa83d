// What a cache entry's KV depends on, so an entry is only ever restored into the engine that
// would compute the same bits: the model (config.json, and the weight files by size and mtime:
// hashing gigabytes on every start would cost more than the prefill it saves), the tokenizer,
// the engine build (the addon file), the backend and what it computes with, and the context settings.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { NativeModelSpec } from '../model/native';
import { FORMAT_VERSION, type Fingerprint } from './format';

export interface FingerprintInputs {
  modelDir: string;
  spec: NativeModelSpec;
  /** The backend that computed the KV (e.g. "cpu"). */
  backend: string;
  /** What the backend adds (NativeModelStats.backendDetail, e.g. "prefill GEMM on cuBLASLt 13.1.0"):
   * another library or version rounds the prefill differently. */
  backendDetail?: string;
  /** The native addon file: a rebuilt engine may round differently. */
  addonPath: string;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model'];

export function cacheFingerprint(inputs: FingerprintInputs): Fingerprint {
  const { modelDir, spec } = inputs;
  const model = createHash('sha256').update(readFileSync(join(modelDir, 'config.json')));
  for (const file of [...new Set(spec.tensors.map((t) => t.file))].sort()) model.update(`\0${basename(file)}:${sizeAndTime(file)}`);
  const tokenizer = createHash('sha256');
  for (const name of TOKENIZER_FILES) {
    const file = join(modelDir, name);
    if (existsSync(file)) tokenizer.update(`\0${name}\0`).update(readFileSync(file));
  }
  return {
    format: FORMAT_VERSION,
    model: model.digest('hex'),
    tokenizer: tokenizer.digest('hex'),
    engine: sizeAndTime(inputs.addonPath),
    // A half-precision CUDA prefill (NativeModelSpec.prefillPrecision) computes different KV bits.
    backend: (inputs.backend === 'cuda' && spec.prefillPrecision === 'half' ? 'cuda/half-prefill' : inputs.backend) +
      (inputs.backendDetail ? `; ${inputs.backendDetail}` : ''),
    kvBlockSize: spec.kvBlockSize,
    contextTokens: spec.contextTokens,
  };
}

function sizeAndTime(file: string): string {
  const s = statSync(file);
  return `${s.size}:${Math.round(s.mtimeMs)}`;
}
