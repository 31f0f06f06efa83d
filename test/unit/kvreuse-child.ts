// One engine lifetime for test/unit/kvreuse-restart.test.ts: loads stories260K in this process,
// then either prefills a prefix and saves it to the disk cache ("save"), or restores the prefix
// from the disk cache and runs the question ("restore"), printing the question's logits (all
// positions, float32 bits as base64). Usage: kvreuse-child.ts save|restore JOB.json
import { readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { cacheFingerprint, PrefixDiskCache } from '../../src/cache';
import { readModelSpec } from '../../src/model/loader';
import type { NativeAddon } from '../../src/model/native';

interface Job { modelDir: string; addon: string; dir: string; key: string; prefix: number[]; question: number[] }

const [mode, jobFile] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobFile, 'utf8')) as Job;
const addon = createRequire(join(process.cwd(), 'package.json'))(job.addon) as NativeAddon;
const spec = readModelSpec(job.modelDir, { kvBlockSize: 32, threads: 1 });
const model = addon.loadModel({ ...spec, backend: 'cpu' });
const fingerprint = cacheFingerprint({ modelDir: job.modelDir, spec, backend: 'cpu', addonPath: job.addon });
const disk = new PrefixDiskCache(fingerprint, { layers: spec.arch.numLayers, kvHeads: spec.arch.numKvHeads, headDim: spec.arch.headDim });
const options = { dir: job.dir, key: job.key };

if (mode === 'save') {
  const seq = model.newSequence();
  model.forward(seq, Int32Array.from(job.prefix), 'none');
  const saved = disk.save(model, seq, job.prefix, options);
  writeSync(1, JSON.stringify({ saved, forwarded: model.stats().tokensForwarded, notes: disk.takeNotes() }));
} else {
  const ids = [...job.prefix, ...job.question];
  const restored = disk.restore(model, ids, job.prefix.length, 0, options);
  if (!restored) throw new Error(`nothing restored: ${disk.takeNotes().join('; ')}`);
  const logits = model.forward(restored.seq, Int32Array.from(job.question), 'all');
  writeSync(1, JSON.stringify({
    restored: restored.tokens, forwarded: model.stats().tokensForwarded, notes: disk.takeNotes(),
    logits: Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength).toString('base64'),
  }));
}
model.dispose();
