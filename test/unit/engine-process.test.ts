// The real engine process (dist/engine.js + the native addon) driven through EngineClient.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient, EngineError, type CrashInfo } from '../../src/engine/client';
import { buildBundles, ENGINE, STORIES } from './engine-harness';

const golden = JSON.parse(readFileSync('../shared/models/stories260K/golden-transformers.json', 'utf8')) as {
  prompt: string; input_ids: number[]; greedy_ids: number[]; greedy_text: string;
};

let client: EngineClient;
before(async () => {
  await buildBundles();
  client = new EngineClient({ enginePath: ENGINE });
  await client.load({ modelDir: STORIES });
});
after(() => client.dispose());

function isEngineError(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof EngineError, `expected an EngineError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

test('greedy 64 tokens from "Once upon a time" equal transformers (ids and text), streamed in order', async () => {
  const pieces: string[] = [];
  const ids: number[] = [];
  const result = await client.generate({
    prompt: { text: golden.prompt }, maxNewTokens: 64, stopAtEos: false,
    onToken: (t) => { pieces.push(t.text); ids.push(t.tokenId); },
  }).result;
  assert.equal(result.promptTokens, golden.input_ids.length);
  assert.deepEqual(result.ids, golden.greedy_ids.slice(golden.input_ids.length));
  assert.equal(golden.prompt + result.text, golden.greedy_text);
  assert.equal(pieces.join(''), result.text);
  assert.deepEqual(ids, result.ids);
  assert.equal(result.finishReason, 'length');
});

test('async iteration yields progress then tokens; the prompt as ids gives the same tokens', async () => {
  const g = client.generate({ prompt: { ids: golden.input_ids }, maxNewTokens: 8, stopAtEos: false });
  const events = [];
  for await (const e of g) events.push(e);
  const result = await g.result;
  assert.ok(events.some((e) => e.type === 'progress'));
  assert.deepEqual(events.filter((e) => e.type === 'token').map((e) => (e as { tokenId: number }).tokenId), result.ids);
  assert.deepEqual(result.ids, golden.greedy_ids.slice(5, 13));
});

test('a prompt sharing a prefix with the last one reuses its KV and gives the same tokens as a fresh engine', async () => {
  const prompt = { ids: golden.greedy_ids.slice(0, 20) };
  await client.generate({ prompt: { ids: golden.greedy_ids.slice(0, 12) }, maxNewTokens: 4, stopAtEos: false }).result;
  const reused = await client.generate({ prompt, maxNewTokens: 16, stopAtEos: false }).result;
  assert.ok(reused.prefilledTokens < 20, `prefilled ${reused.prefilledTokens} of 20`);
  const fresh = new EngineClient({ enginePath: ENGINE });
  try {
    await fresh.load({ modelDir: STORIES });
    const r = await fresh.generate({ prompt, maxNewTokens: 16, stopAtEos: false }).result;
    assert.equal(r.prefilledTokens, 20);
    assert.deepEqual(reused.ids, r.ids);
    assert.deepEqual(r.ids, golden.greedy_ids.slice(20, 36));
  } finally {
    await fresh.dispose();
  }
});

test('top-p sampling with a seed is repeatable and differs across seeds', async () => {
  const run = (seed: number) => client.generate({ prompt: { text: 'Once upon a time' }, maxNewTokens: 24, stopAtEos: false, sampling: { temperature: 1, topP: 0.9, seed } }).result;
  const a = await run(11), b = await run(11), c = await run(12);
  assert.deepEqual(a.ids, b.ids);
  assert.notDeepEqual(a.ids, c.ids);
});

test('cancel stops a generation: finishReason cancelled, fewer tokens (by cancel() and by AbortSignal)', async () => {
  let count = 0;
  const g = client.generate({ prompt: { text: 'Once' }, maxNewTokens: 400, stopAtEos: false, onToken: () => { if (++count === 3) g.cancel(); } });
  const r = await g.result;
  assert.equal(r.finishReason, 'cancelled');
  assert.ok(r.ids.length >= 3 && r.ids.length < 400, `${r.ids.length} tokens`);

  const abort = new AbortController();
  let n = 0;
  const r2 = await client.generate({ prompt: { text: 'Once' }, maxNewTokens: 400, stopAtEos: false, signal: abort.signal, onToken: () => { if (++n === 2) abort.abort(); } }).result;
  assert.equal(r2.finishReason, 'cancelled');
  assert.ok(r2.ids.length < 400);
});

test('prefill runs in chunks with progress; a cancel during prefill is seen before the next chunk', async () => {
  const prompt = { ids: [1, ...Array.from({ length: 450 }, (_, i) => 300 + (i % 150))] };
  const progress: number[] = [];
  const full = await client.generate({ prompt, maxNewTokens: 1, onProgress: (p) => progress.push(p.done) }).result;
  assert.ok(progress.length >= 3, `chunks: ${progress}`);
  assert.deepEqual([...progress].sort((a, b) => a - b), progress);
  assert.equal(progress[progress.length - 1], full.prefilledTokens);

  const other = { ids: [1, ...Array.from({ length: 450 }, (_, i) => 260 + (i % 140))] };
  const g = client.generate({ prompt: other, maxNewTokens: 8, onProgress: () => g.cancel() });
  const r = await g.result;
  assert.equal(r.finishReason, 'cancelled');
  assert.deepEqual(r.ids, []);
  assert.ok(r.prefilledTokens < 451, `prefilled ${r.prefilledTokens}`);
});

test('a prompt longer than the context: prompt-too-long, and the engine keeps serving', async () => {
  const long = { ids: Array.from({ length: 600 }, (_, i) => 300 + (i % 100)) };
  await assert.rejects(client.generate({ prompt: long, maxNewTokens: 4 }).result, isEngineError('prompt-too-long', /600 tokens .* context holds 512/));
  await assert.rejects(client.generate({ prompt: { ids: [1, 9999] }, maxNewTokens: 4 }).result, isEngineError('bad-request', /9999/));
  const ok = await client.generate({ prompt: { text: golden.prompt }, maxNewTokens: 4, stopAtEos: false }).result;
  assert.deepEqual(ok.ids, golden.greedy_ids.slice(5, 9));
});

test('a smaller context from load: prompt-too-long names both numbers; generation stops at the context', async () => {
  const c = new EngineClient({ enginePath: ENGINE });
  try {
    const info = await c.load({ modelDir: STORIES, contextTokens: 16 });
    assert.equal(info.contextTokens, 16);
    await assert.rejects(c.generate({ prompt: { text: 'Once upon a time there was a little girl named Lily who' }, maxNewTokens: 4 }).result,
      isEngineError('prompt-too-long', /context holds 16/));
    const r = await c.generate({ prompt: { text: golden.prompt }, maxNewTokens: 100, stopAtEos: false }).result;
    assert.equal(r.finishReason, 'length');
    assert.equal(r.promptTokens + r.ids.length, 16 + 1, 'the last sampled token needs no KV slot');
  } finally {
    await c.dispose();
  }
});

test('killing the engine mid-generation: engine-crashed with the signal, a crash event, and the next request works', async () => {
  const crashes: CrashInfo[] = [];
  let restarts = 0;
  client.on('crash', (c: CrashInfo) => crashes.push(c));
  client.on('restart', () => restarts++);
  const pid = client.pid!;
  let killed = false;
  const g = client.generate({ prompt: { text: 'Once' }, maxNewTokens: 500, stopAtEos: false, onToken: () => { if (!killed) { killed = true; process.kill(pid, 'SIGKILL'); } } });
  await assert.rejects(g.result, isEngineError('engine-crashed', /killed by signal SIGKILL/));
  assert.equal(crashes.length, 1);
  assert.equal(crashes[0].signal, 'SIGKILL');
  const r = await client.generate({ prompt: { text: golden.prompt }, maxNewTokens: 64, stopAtEos: false }).result;
  assert.equal(restarts, 1);
  assert.notEqual(client.pid, pid);
  assert.equal(golden.prompt + r.text, golden.greedy_text, 'the model was reloaded');
});

test('a Stop (AbortSignal) while the engine restarts after a crash is not lost: the generation ends cancelled', async () => {
  const c = new EngineClient({ enginePath: ENGINE });
  try {
    await c.load({ modelDir: STORIES });
    const crashed = new Promise((resolve) => c.once('crash', resolve));
    process.kill(c.pid!, 'SIGKILL');
    await crashed;
    // The next request starts a new engine and reloads the model before it is sent: abort then.
    const abort = new AbortController();
    c.once('restart', () => abort.abort());
    const r = await c.generate({ prompt: { text: 'Once' }, maxNewTokens: 400, stopAtEos: false, signal: abort.signal }).result;
    assert.equal(r.finishReason, 'cancelled');
    assert.ok(r.ids.length < 400, `${r.ids.length} tokens`);
    // The engine serves the next request in full.
    const next = await c.generate({ prompt: { text: golden.prompt }, maxNewTokens: 8, stopAtEos: false }).result;
    assert.equal(next.finishReason, 'length');
  } finally {
    await c.dispose();
  }
});

test('generation stops at an end-of-sequence id from generation_config.json (unless stopAtEos is false)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rl-eos-'));
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(STORIES, f), join(dir, f));
  // The second greedy token after "Once upon a time" (golden id 383) is declared an end of sequence.
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, golden.greedy_ids[6]] }));
  const c = new EngineClient({ enginePath: ENGINE });
  try {
    await c.load({ modelDir: dir });
    const stopped = await c.generate({ prompt: { text: golden.prompt }, maxNewTokens: 10 }).result;
    assert.equal(stopped.finishReason, 'eos');
    assert.deepEqual(stopped.ids, [golden.greedy_ids[5]], 'the end-of-sequence token itself is not part of the answer');
    const going = await c.generate({ prompt: { text: golden.prompt }, maxNewTokens: 10, stopAtEos: false }).result;
    assert.deepEqual(going.ids, golden.greedy_ids.slice(5, 15));
  } finally {
    await c.dispose();
  }
});

test('missing tokenizer.json: model-missing naming the file, and the engine keeps serving', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rl-model-'));
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(STORIES, f), join(dir, f));
  const c = new EngineClient({ enginePath: ENGINE });
  try {
    await assert.rejects(c.load({ modelDir: dir }), isEngineError('model-missing', new RegExp(`${join(dir, 'tokenizer.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: missing`)));
    await assert.rejects(c.load({ modelDir: join(dir, 'nope') }), isEngineError('model-missing', /config\.json: the model folder does not exist/));
    await assert.rejects(c.generate({ prompt: { text: 'x' }, maxNewTokens: 1 }).result, isEngineError('not-loaded'));
    const info = await c.load({ modelDir: STORIES });
    assert.equal(info.vocabSize, 512);
    // This build (or machine) has no usable CUDA: asking for it is refused with the reason, auto says why it chose CPU.
    await assert.rejects(c.load({ modelDir: STORIES, backend: 'cuda' }), isEngineError('backend-unavailable', /CUDA was asked for but cannot be used: /));
    const auto = await c.load({ modelDir: STORIES, backend: 'auto' });
    assert.equal(auto.backend, 'cpu');
    assert.match(auto.backendReason, /^no usable CUDA \(.+\): CPU$/);
  } finally {
    await c.dispose();
  }
});

test('REPO_LENS_ADDON overrides the addon path; a missing addon is backend-unavailable naming the path', async () => {
  const path = join(tmpdir(), 'no-such-addon.node');
  const c = new EngineClient({ enginePath: ENGINE, env: { ...process.env, REPO_LENS_ADDON: path } });
  try {
    await assert.rejects(c.load({ modelDir: STORIES }), isEngineError('backend-unavailable', new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the native addon is missing`)));
    await assert.rejects(c.load({ modelDir: STORIES, backend: 'webgpu' }), isEngineError('backend-unavailable'));
  } finally {
    await c.dispose();
  }
});

test('the engine answers a malformed message with bad-request naming the field, and stays up', async () => {
  const child = fork(ENGINE, [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const replies: unknown[] = [];
  child.on('message', (m) => replies.push(m));
  const next = () => new Promise<void>((r) => child.once('message', () => r()));
  try {
    child.send({ type: 'generate', id: 7, prompt: { text: 'x' }, maxNewTokens: -1, sampling: { temperature: 0, topP: 1, seed: 0 }, stopAtEos: true });
    await next();
    child.send({ type: 'load', id: 8, modelDir: 42 });
    await next();
    child.send('not an object');
    await next();
    child.send({ type: 'tokenize', id: 9, text: 'hi', addSpecialTokens: true });
    await next();
    assert.deepEqual(replies.map((r) => (r as { code?: string }).code), ['bad-request', 'bad-request', 'bad-request', 'not-loaded']);
    assert.match((replies[0] as { message: string }).message, /maxNewTokens must be >= 0/);
    assert.match((replies[1] as { message: string }).message, /modelDir must be a string/);
    assert.deepEqual((replies[0] as { id: number }).id, 7);
  } finally {
    child.kill();
  }
});

test('an engine that never answers: timeout, the process is ended, no request hangs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rl-silent-'));
  const silent = join(dir, 'silent.js');
  writeFileSync(silent, "process.on('message', () => {});\n");
  const c = new EngineClient({ enginePath: silent, replyTimeoutMs: 300 });
  try {
    await assert.rejects(c.load({ modelDir: STORIES }), isEngineError('timeout', /sent nothing for 0 s while answering a load request/));
  } finally {
    await c.dispose();
  }
  const missing = new EngineClient({ enginePath: join(dir, 'no-such-engine.js') });
  await assert.rejects(missing.load({ modelDir: STORIES }), isEngineError('engine-crashed', /exited with code 1/));
  await missing.dispose();
});
