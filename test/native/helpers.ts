// Shared by the native tests: the built addon, goldens on disk, and a tiny argmax (sampling is
// not under test here).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeAddon, NativeModel } from '../../src/model/native';

export const STORIES_DIR = join('..', 'shared', 'models', 'stories260K', 'hf');
export const STORIES_GOLDEN = join('..', 'shared', 'models', 'stories260K', 'golden-transformers.json');
export const FIXTURES = join('test', 'fixtures');

/** The addon: $REPO_LENS_ADDON (as the engine process reads it), else native/build/Release/repo_lens.node. */
export function loadAddon(): NativeAddon {
  const require = createRequire(join(process.cwd(), 'package.json'));
  return require(process.env.REPO_LENS_ADDON || join(process.cwd(), 'native', 'build', 'Release', 'repo_lens.node')) as NativeAddon;
}

export function readJson<T = any>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** A little-endian float32 file as a Float32Array. */
export function readF32(path: string): Float32Array {
  const bytes = readFileSync(path);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

/** First index of the largest value (what torch.argmax returns). */
export function argmax(a: Float32Array, from = 0, to = a.length): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if (a[i] > a[best]) best = i;
  return best - from;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Greedy decoding from `prompt` until `total` ids, one token per forward after the prompt. */
export function greedy(model: NativeModel, prompt: number[], total: number, vocab: number): { ids: number[]; logits: Float32Array } {
  const seq = model.newSequence();
  const logits = new Float32Array(total * vocab);
  const first = model.forward(seq, Int32Array.from(prompt), 'all');
  logits.set(first);
  const ids = [...prompt];
  let last = first.subarray((prompt.length - 1) * vocab);
  while (ids.length < total) {
    const next = argmax(last);
    ids.push(next);
    if (ids.length === total) break;
    last = model.forward(seq, Int32Array.of(next), 'last');
    logits.set(last, (ids.length - 1) * vocab);
  }
  model.freeSequence(seq);
  return { ids, logits: logits.subarray(0, (total - 1) * vocab) };
}
