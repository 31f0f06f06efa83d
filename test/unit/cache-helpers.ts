// Shared by the disk-cache tests: a small KV shape, a fingerprint and deterministic spans.
import { floatsPerPosition, type Fingerprint, type KvShape } from '../../src/cache/format';

export const SHAPE: KvShape = { layers: 2, kvHeads: 2, headDim: 4 };
export const FINGERPRINT: Fingerprint = { format: 1, model: 'test-model', tokenizer: 'test-tokenizer', kvBlockSize: 8, contextTokens: 64 };

/** A span whose every float names its position, layer, half and index (so a misplaced chunk shows). */
export function syntheticSpan(start: number, count: number): Float32Array {
  const per = floatsPerPosition(SHAPE);
  const out = new Float32Array(count * per);
  for (let i = 0; i < out.length; i++) out[i] = start * 1000 + i + 0.25;
  return out;
}
