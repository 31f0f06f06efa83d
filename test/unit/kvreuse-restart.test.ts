// Must-show 3 of issue 6: a prefix restored from the disk cache after a restart gives logits
// bit-identical to a fresh prefill. The prefix is a real ask prompt (chat head + repository from
// the context builder); one process prefills and saves it and exits, a second process restores it
// and runs the question, and this process prefills everything from scratch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildContext } from '../../src/context';
import { readModelSpec } from '../../src/model/loader';
import type { NativeAddon } from '../../src/model/native';
import { contextTokenizer, questionPrompt, tokenizerFor } from '../../src/qa';
import { ADDON, STORIES } from './engine-harness';

function child(mode: 'save' | 'restore', jobFile: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join('test', 'unit', 'kvreuse-child.ts'), mode, jobFile], { encoding: 'utf8' });
  return JSON.parse(out) as Record<string, unknown>;
}

test('a prefix restored from disk in a new process gives logits bit-identical to a fresh prefill', async () => {
  const work = mkdtempSync(join(tmpdir(), 'rl-kvreuse-'));
  // A private copy of the addon: the cache is keyed by the engine build, which others may rebuild meanwhile.
  const addonPath = join(work, 'repo_lens.node');
  copyFileSync(ADDON, addonPath);
  const repo = join(work, 'repo');
  mkdirSync(join(repo, 'src'), { recursive: true });
  writeFileSync(join(repo, 'README.md'), '# Garden\nA tiny story repository.\n');
  for (let i = 0; i < 6; i++) writeFileSync(join(repo, 'src', `story${i}.txt`), `Lily found ${i} red balls in the park.\nShe gave one to Tom.\n`.repeat(3));

  const tokenizer = tokenizerFor(STORIES);
  const { headIds, suffixIds } = questionPrompt(tokenizer, 'How many balls did Lily find?');
  const ctx = await buildContext({ root: repo, tokenizer: contextTokenizer(tokenizer), budgetTokens: 300, blockSize: 32, offset: headIds.length });
  const prefix = [...headIds, ...ctx.ids];
  assert.ok(prefix.length > 100 && prefix.length % 32 !== 0, `prefix of ${prefix.length} tokens ends inside a block`);
  const job = { modelDir: STORIES, addon: addonPath, dir: join(work, 'cache'), key: repo, prefix, question: suffixIds };
  const jobFile = join(work, 'job.json');
  writeFileSync(jobFile, JSON.stringify(job));

  const saved = child('save', jobFile);
  assert.equal(saved.saved, prefix.length);
  assert.equal(readdirSync(job.dir).filter((n) => n.endsWith('.rlkv')).length, 1);
  const restored = child('restore', jobFile);
  assert.equal(restored.restored, prefix.length);
  assert.equal(restored.forwarded, suffixIds.length, 'the restarted engine ran only the question');
  assert.deepEqual(restored.notes, []);

  const addon = createRequire(join(process.cwd(), 'package.json'))(addonPath) as NativeAddon;
  const model = addon.loadModel({ ...readModelSpec(STORIES, { kvBlockSize: 32, threads: 1 }), backend: 'cpu' });
  const seq = model.newSequence();
  model.forward(seq, Int32Array.from(prefix), 'none');
  const fresh = model.forward(seq, Int32Array.from(suffixIds), 'all');
  model.dispose();
  const freshBits = Buffer.from(fresh.buffer, fresh.byteOffset, fresh.byteLength);
  const restoredBits = Buffer.from(restored.logits as string, 'base64');
  assert.equal(restoredBits.length, freshBits.length);
  assert.ok(restoredBits.equals(freshBits), 'logits after a restore differ from a fresh prefill in at least one bit');
});
