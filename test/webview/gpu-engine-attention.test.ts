// Sparse decode attention through the protocol on both engines: the WebGPU engine (driven by its
// host-side client over the webview channel, as the extension drives it) and the native CPU engine
// (its real engine process) get the same stories260K prompt and attention settings; they must
// generate the same ids and return the same report: the same blocks, source and expansion for
// every step, layer and KV head, the same counters, and δ̂ within 1e-4 (the GPU's q and keys differ
// from the CPU's in the last bits).

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as esbuild from 'esbuild';
import { EngineClient, EngineError, type GenerateOptions } from '../../src/engine/client';
import type { AttentionReport, GenerateResult } from '../../src/engine/protocol';
import { WebGpuEngineClient, type WebviewChannel } from '../../src/engine/webgpu';
import { ask } from '../../src/qa';
import { askTrace } from '../../src/trace/askTrace';
import { ATTENTION_DEFAULTS, type AttentionSettings } from '../../src/trace/attention';
import { validateTrace } from '../../src/trace/validate';
import { MODEL_DIRS, openGpuPage, type GpuPage } from './gpu-harness';

const repo = resolve(import.meta.dirname, '../..');
const ADDON = process.env.REPO_LENS_ADDON ?? join(repo, 'native/build/Release/repo_lens.node');
const golden = JSON.parse(readFileSync(join(MODEL_DIRS.stories260K, '../golden-transformers.json'), 'utf8'));
/** About 280 tokens: enough blocks of 16 for a 25% budget to leave most of them out. */
const PROMPT = { text: golden.greedy_text.repeat(4) };
const NEW_TOKENS = 20;

/** Differences between two reports' per-step selections (empty: the same). */
function stepDifferences(got: AttentionReport['steps'], want: AttentionReport['steps']): string[] {
  if (!got || !want) return [`steps ${got ? 'present' : 'missing'} vs ${want ? 'present' : 'missing'}`];
  if (got.length !== want.length) return [`${got.length} steps vs ${want.length}`];
  const out: string[] = [];
  got.forEach((layers, s) => layers.forEach((heads, l) => heads.forEach((a, h) => {
    const b = want[s][l][h];
    const where = `step ${s}, layer ${l}, KV head ${h}`;
    if (JSON.stringify(a.blocks) !== JSON.stringify(b.blocks)) out.push(`${where}: blocks ${JSON.stringify(a.blocks)} vs ${JSON.stringify(b.blocks)}`);
    if (a.source !== b.source) out.push(`${where}: source ${a.source} vs ${b.source}`);
    if (a.expanded !== b.expanded) out.push(`${where}: expanded ${a.expanded} vs ${b.expanded}`);
    for (const k of ['deltaHat', 'delta'] as const) {
      const [x, y] = [a[k], b[k]];
      if ((x === null) !== (y === null) || (x !== null && y !== null && Math.abs(x - y) > 1e-4)) out.push(`${where}: ${k} ${x} vs ${y}`);
    }
  })));
  return out;
}

describe('WebGPU engine: sparse attention through the protocol equals the native CPU engine', () => {
  let gpu: GpuPage;
  let webgpu: WebGpuEngineClient;
  let native: EngineClient;
  let bundleDir: string;
  let lastPost: Promise<unknown> = Promise.resolve();

  before(async () => {
    // The native engine process, bundled as scripts/bundle.mjs does, into a folder of its own.
    bundleDir = mkdtempSync(join(tmpdir(), 'repo-lens-engine-'));
    await esbuild.build({
      entryPoints: { engine: join(repo, 'src/engine/process.ts') }, outdir: bundleDir,
      bundle: true, platform: 'node', format: 'cjs', target: 'es2022', external: ['vscode'], logLevel: 'warning',
    });
    // A private copy of the addon: others may rebuild native/ meanwhile.
    assert.ok(existsSync(ADDON), `${ADDON} is missing: run "npm run build:native" first`);
    copyFileSync(ADDON, join(bundleDir, 'repo_lens.node'));
    native = new EngineClient({ enginePath: join(bundleDir, 'engine.js'), env: { ...process.env, REPO_LENS_ADDON: join(bundleDir, 'repo_lens.node') } });

    gpu = await openGpuPage();
    const listeners = new Set<(m: unknown) => void>();
    await gpu.page.exposeFunction('toHost', (m: unknown) => listeners.forEach((l) => l(m)));
    const channel: WebviewChannel = {
      postMessage: (m) => (lastPost = gpu.page.evaluate((x) => window.gpuTest.deliver(x), m as object)),
      onDidReceiveMessage: (l) => {
        listeners.add(l);
        return { dispose: () => listeners.delete(l) };
      },
    };
    webgpu = new WebGpuEngineClient(channel, () => `${gpu.origin}/models/stories260K/`);
    await gpu.page.evaluate(() => window.gpuTest.serve());

    const load = { modelDir: MODEL_DIRS.stories260K, kvBlockSize: 16, backend: 'cpu' as const, threads: 1 };
    const [gpuInfo, cpuInfo] = await Promise.all([webgpu.load(load), native.load(load)]);
    assert.equal(gpuInfo.backend, 'webgpu');
    assert.equal(cpuInfo.backend, 'cpu');
  });
  after(async () => {
    await native?.dispose();
    await webgpu?.dispose();
    await lastPost;
    await gpu?.close();
    if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
  });

  test('ask with PrHS on a small repository: the WebGPU answer and its selection trace equal the CPU engine\'s', async () => {
    const repo = join(bundleDir, 'repo');
    mkdirSync(join(repo, 'src'), { recursive: true });
    writeFileSync(join(repo, 'README.md'), '# Garden\nStories about Lily and Tom.\n');
    const sentences = golden.greedy_text.split('. ');
    sentences.forEach((s: string, i: number) => writeFileSync(join(repo, 'src', `story${i}.txt`), `${s}.\n`.repeat(6)));
    const attention: AttentionSettings = { ...ATTENTION_DEFAULTS, mode: 'prhs', window: 32 };
    const options = { maxNewTokens: 12, recentFiles: [], attention, trace: true };
    const g = await ask('What did Lily have?', repo, { client: webgpu, ...options });
    const c = await ask('What did Lily have?', repo, { client: native, ...options });
    assert.ok(g.tokens.repository > 150, `repository of ${g.tokens.repository} tokens`);
    assert.deepEqual(g.ids, c.ids);
    assert.equal(g.answer, c.answer);
    assert.deepEqual(stepDifferences(g.attention?.steps, c.attention?.steps), []);
    const trace = (r: typeof g) => askTrace({
      result: r, modelName: 'stories260K', arch: { numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8 }, kvBlockSize: 16, tokenText: () => '',
    });
    const gpuTrace = trace(g);
    assert.deepEqual(validateTrace(JSON.parse(JSON.stringify(gpuTrace))), []);
    assert.equal(gpuTrace.steps.length, g.ids.length);
    const blocks = (t: typeof gpuTrace) => t.steps.map((s) => s.layers.map((l) => l.heads.map((h) => h.blocks)));
    assert.deepEqual(blocks(gpuTrace), blocks(trace(c)), 'the selection panel shows the same blocks');
  });

  const both = async (options: GenerateOptions): Promise<[GenerateResult, GenerateResult]> => [
    await webgpu.generate(options).result,
    await native.generate(options).result,
  ];

  const cases: [string, Partial<AttentionSettings>][] = [
    ['prhs (defaults: int8 key copies), audited', { mode: 'prhs', window: 32, audit: true }],
    ['prhs strict, min/max bounds, cross-layer groups of 2, depth schedule', { mode: 'prhs', window: 32, strict: true, keyBound: 'minmax', layerGroup: 2, depthSchedule: true }],
    ['prhs tight budget in tokens, int4, certify every 3', { mode: 'prhs', window: 16, budgetTokens: 64, keyBound: 'int4', certifyEvery: 3, tau: 0.95 }],
    ['quest', { mode: 'quest', window: 32 }],
    ['oracle', { mode: 'oracle', window: 32 }],
    ['streaming', { mode: 'streaming', window: 32 }],
  ];
  for (const [name, settings] of cases) {
    test(`${name}: same ids, same selection every step, same counters`, async (t) => {
      const attention: AttentionSettings = { ...ATTENTION_DEFAULTS, ...settings };
      const [g, c] = await both({ prompt: PROMPT, maxNewTokens: NEW_TOKENS, stopAtEos: false, attention, trace: true });
      assert.ok(g.promptTokens > 250, `prompt of ${g.promptTokens} tokens`);
      assert.deepEqual(g.ids, c.ids, 'generated ids');
      assert.equal(g.text, c.text);
      assert.equal(g.ids.length, NEW_TOKENS);
      const [a, b] = [g.attention!, c.attention!];
      assert.ok(a, 'the WebGPU engine returns an attention report');
      assert.deepEqual(a.settings, attention);
      assert.equal(a.steps!.length, g.ids.length, 'one selection per generated token');
      assert.deepEqual(stepDifferences(a.steps, b.steps), []);
      assert.deepEqual(a.counters, b.counters, 'counters');
      assert.ok(a.counters.entriesRead < a.counters.entriesContext, 'fewer KV entries read than dense');
      t.diagnostic(`KV entries read: ${(100 * a.counters.entriesRead / a.counters.entriesContext).toFixed(1)}%; scoring passes ${a.counters.scoringPasses}, expanded ${a.counters.expanded}`);
    });
  }

  test('a follow-up question reuses the kept prefix on both engines and still selects alike', async () => {
    const attention: AttentionSettings = { ...ATTENTION_DEFAULTS, mode: 'prhs', window: 32 };
    const first = await both({ prompt: PROMPT, maxNewTokens: 8, stopAtEos: false, attention, trace: true });
    const longer = { text: PROMPT.text + first[1].text + ' The end. Lily' };
    const [g, c] = await both({ prompt: longer, maxNewTokens: 12, stopAtEos: false, attention, trace: true });
    assert.equal(g.prefilledTokens, c.prefilledTokens);
    assert.ok(g.prefilledTokens < g.promptTokens / 4, `prefilled ${g.prefilledTokens} of ${g.promptTokens}`);
    assert.deepEqual(g.ids, c.ids);
    assert.deepEqual(stepDifferences(g.attention!.steps, c.attention!.steps), []);
    assert.deepEqual(g.attention!.counters, c.attention!.counters);

    // A question that shares only part of the prompt: the kept KV (and the WebGPU engine's key
    // mirrors) are cut inside a block, the rest is prefilled again.
    const shorter = { text: golden.greedy_text.repeat(3) + ' Tom was sad.' };
    const [gs, cs] = await both({ prompt: shorter, maxNewTokens: 12, stopAtEos: false, attention, trace: true });
    assert.equal(gs.prefilledTokens, cs.prefilledTokens);
    assert.ok(gs.prefilledTokens < gs.promptTokens / 2 && (gs.promptTokens - gs.prefilledTokens) % 16 !== 0, `prefilled ${gs.prefilledTokens} of ${gs.promptTokens}`);
    assert.deepEqual(gs.ids, cs.ids);
    assert.deepEqual(stepDifferences(gs.attention!.steps, cs.attention!.steps), []);
    assert.deepEqual(gs.attention!.counters, cs.attention!.counters);
  });

  test('KV segment assembly (native CPU engine only) is refused with the reason, never ignored', async () => {
    const kvAssembly = { mode: 'segments' as const, starts: [1, 40], end: 80, recompute: 0.1 };
    await assert.rejects(webgpu.generate({ prompt: PROMPT, maxNewTokens: 2, kvAssembly }).result,
      (e: unknown) => e instanceof EngineError && e.code === 'backend-unavailable' && /kvAssembly "segments".*webgpu/.test(e.message));
    assert.equal((await webgpu.generate({ prompt: PROMPT, maxNewTokens: 2 }).result).ids.length, 2, 'the engine still answers');
  });

  test('mode dense: the dense path on both, no report; without trace, counters but no steps', async () => {
    const [g, c] = await both({ prompt: PROMPT, maxNewTokens: 8, stopAtEos: false, attention: { ...ATTENTION_DEFAULTS, mode: 'dense' }, trace: true });
    assert.deepEqual(g.ids, c.ids);
    assert.equal(g.attention, undefined);
    assert.equal(c.attention, undefined);
    const [gq, cq] = await both({ prompt: PROMPT, maxNewTokens: 8, stopAtEos: false, attention: { ...ATTENTION_DEFAULTS, mode: 'quest', window: 32 } });
    assert.deepEqual(gq.ids, cq.ids);
    assert.equal(gq.attention!.steps, undefined);
    assert.deepEqual(gq.attention!.counters, cq.attention!.counters);
  });
});
