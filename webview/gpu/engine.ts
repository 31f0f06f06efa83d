// The WebGPU engine: answers protocol requests (src/engine/protocol.ts) with the GPU forward pass,
// with the same behaviour as the native engine process (src/engine/process.ts): requests run one
// at a time in order, `cancel` acts at once, prefill goes in chunks with progress, the prompt's
// common prefix with the previous sequence reuses its KV cache, decode attention follows the
// request's `attention` settings (PrHS or a baseline, with the per-step selection for the trace),
// and no error ends the engine.
// Prompts are token ids and token texts are empty: the extension host tokenizes and detokenizes
// (src/engine/webgpu.ts), with the same tokenizer code as the native engine.

import { ModelError } from '../../src/model/errors';
import { Sampler } from '../../src/model/sampling';
import {
  parseRequest, ProtocolError,
  type AttentionReport, type ErrorCode, type GenerateRequest, type GenerateResult, type LoadRequest, type ModelInfo, type Reply, type Request, type StepHeadSelection,
} from '../../src/engine/protocol';
import type { AttentionSettings } from '../../src/trace/attention';
import { GpuUnavailableError, type Gpu } from './device';
import type { ModelFiles } from './files';
import { loadModel, type LoadedModel } from './load';
import type { Counters } from './prhs/decodeAttention';

export interface EngineHost {
  post(reply: Reply): void;
  /** The model folder a load request names (in the webview: a URL the extension host made readable). */
  files(modelDir: string): ModelFiles;
  acquireGpu(): Promise<Gpu>;
}

/** Rows per prefill submission: a cancel is seen between chunks. */
const PREFILL_CHUNK = 64;

class EngineFailure extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

interface Loaded {
  gpu: Gpu;
  model: LoadedModel;
  info: ModelInfo;
  /** Ids whose KV the model's cache holds, for prefix reuse by the next prompt. */
  held: number[];
}

export class WebGpuEngine {
  private gpu: Gpu | null = null;
  private loaded: Loaded | null = null;
  private readonly cancelled = new Set<number>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly host: EngineHost) {}

  /** Takes one message from the host: validated, then run in order (cancel at once). */
  receive(raw: unknown): void {
    let request: Request;
    try {
      request = parseRequest(raw);
    } catch (e) {
      const id = (raw as { id?: unknown } | null)?.id;
      this.host.post({ type: 'error', id: Number.isInteger(id) && (id as number) >= 0 ? (id as number) : 0, code: 'bad-request', message: `invalid request: ${(e as Error).message}` });
      return;
    }
    if (request.type === 'cancel') {
      this.cancelled.add(request.target);
      return;
    }
    this.queue = this.queue.then(async () => {
      try {
        await this.handle(request);
      } catch (e) {
        const f = this.failureOf(e);
        this.cancelled.delete(request.id);
        this.host.post({ type: 'error', id: request.id, code: f.code, message: f.message });
      }
    });
  }

  /** Resolves when every request received so far has been answered. */
  idle(): Promise<void> {
    return this.queue;
  }

  private async handle(request: Request): Promise<void> {
    switch (request.type) {
      case 'load':
        return this.load(request);
      case 'generate':
        return this.generate(request);
      case 'tokenize':
        throw new EngineFailure('bad-request', 'the WebGPU engine has no tokenizer: the extension host tokenizes');
      case 'shutdown':
        this.unload();
        this.gpu?.device.destroy();
        this.gpu = null;
        return;
      case 'cancel':
        return; // handled on arrival
    }
  }

  private requireLoaded(): Loaded {
    const l = this.loaded;
    if (!l) throw new EngineFailure('not-loaded', 'no model is loaded: send a load request first');
    this.checkDevice(l.gpu);
    return l;
  }

  /** A lost device cannot be used again: drop it (a later load acquires a new one) and say why. */
  private checkDevice(gpu: Gpu): void {
    const lost = gpu.lostReason();
    if (lost === null) return;
    if (this.loaded?.gpu === gpu) this.loaded = null;
    if (this.gpu === gpu) this.gpu = null;
    throw new EngineFailure('backend-unavailable', `${lost}; the CPU engine can be used instead`);
  }

  private async load(request: LoadRequest): Promise<void> {
    if (request.backend !== 'webgpu' && request.backend !== 'auto') {
      throw new EngineFailure('backend-unavailable', `the WebGPU engine cannot run the "${request.backend}" backend`);
    }
    this.unload();
    if (this.gpu?.lostReason()) this.gpu = null; // a lost device is never used again: get a new one
    this.gpu ??= await this.host.acquireGpu();
    const gpu = this.gpu;
    const files = this.host.files(request.modelDir);
    const model = await loadModel(gpu, files, { contextTokens: request.contextTokens, maxChunk: PREFILL_CHUNK, kvBlockSize: request.kvBlockSize }, (done, total) => {
      this.host.post({ type: 'progress', id: request.id, phase: 'load', done, total });
    });
    const info: ModelInfo = {
      modelDir: request.modelDir,
      backend: 'webgpu',
      contextTokens: model.model.options.contextTokens,
      vocabSize: model.arch.vocabSize,
      numLayers: model.arch.numLayers,
      numKvHeads: model.arch.numKvHeads,
      kvBlockSize: request.kvBlockSize,
      weightBytes: model.weightBytes,
      backendReason: `WebGPU on ${gpu.description}`,
    };
    this.loaded = { gpu, model, info, held: [] };
    this.host.post({ type: 'ready', id: request.id, info });
  }

  private unload(): void {
    this.loaded?.model.model.destroy();
    this.loaded = null;
  }

  private promptIds(request: GenerateRequest, l: Loaded): number[] {
    if ('text' in request.prompt) {
      throw new EngineFailure('bad-request', 'prompt.text: the WebGPU engine has no tokenizer; send prompt.ids (the extension host tokenizes)');
    }
    const bad = request.prompt.ids.find((id) => id >= l.info.vocabSize);
    if (bad !== undefined) throw new EngineFailure('bad-request', `prompt.ids: token id ${bad} is outside the vocabulary (size ${l.info.vocabSize})`);
    return request.prompt.ids;
  }

  private async generate(request: GenerateRequest): Promise<void> {
    const l = this.requireLoaded();
    const ids = this.promptIds(request, l);
    const context = l.info.contextTokens;
    if (ids.length === 0) throw new EngineFailure('bad-request', 'prompt: the prompt is empty');
    if (ids.length > context) {
      throw new EngineFailure('prompt-too-long', `the prompt has ${ids.length} tokens but the context holds ${context}: shorten it or raise contextTokens`);
    }
    if (request.kvAssembly) {
      throw new EngineFailure('backend-unavailable', `kvAssembly "${request.kvAssembly.mode}": KV segment assembly runs on the native cpu backend; this engine runs on webgpu`);
    }
    const done = (result: Omit<GenerateResult, 'promptTokens'>) => {
      this.cancelled.delete(request.id);
      this.host.post({ type: 'generated', id: request.id, result: { promptTokens: ids.length, ...result } });
    };
    if (this.cancelled.has(request.id)) return done({ prefilledTokens: 0, ids: [], text: '', finishReason: 'cancelled' });

    const model = l.model.model;
    // Keep the common prefix's KV; at least the last prompt token runs again, for its logits.
    const reused = Math.min(commonPrefix(l.held, ids), ids.length - 1);
    model.truncate(reused);
    l.held = ids.slice(0, reused);
    // Sparse decode attention: the prompt's last token is the first decode step, so every generated
    // token comes from a step that used it (as in the native engine, docs/prhs.md).
    const sparse = request.attention && request.attention.mode !== 'dense' ? request.attention : null;
    const steps: StepHeadSelection[][][] = [];
    const recordStep = () => {
      const step = sparse && request.trace ? model.attentionStep() : null;
      if (step) steps.push(step.layers.map((heads) => heads.map((h) => ({ blocks: [...h.blocks], source: h.source, deltaHat: h.deltaHat, delta: h.delta, expanded: h.expanded }))));
    };
    const prefillEnd = sparse ? ids.length - 1 : ids.length;
    try {
      let logits: Float32Array = new Float32Array(0);
      for (let start = reused; start < prefillEnd; start += PREFILL_CHUNK) {
        const chunk = ids.slice(start, Math.min(prefillEnd, start + PREFILL_CHUNK));
        const last = start + chunk.length >= ids.length;
        logits = await model.forward(chunk, last ? 'last' : 'none');
        l.held.push(...chunk);
        this.host.post({ type: 'progress', id: request.id, phase: 'prefill', done: start + chunk.length - reused, total: ids.length - reused });
        if (this.cancelled.has(request.id)) return done({ prefilledTokens: l.held.length - reused, ids: [], text: '', finishReason: 'cancelled' });
      }
      if (sparse) {
        model.setAttention(sparse);
        logits = await model.forward([ids[ids.length - 1]], 'last');
        l.held.push(ids[ids.length - 1]);
        recordStep();
      }

      const sampler = new Sampler(request.sampling);
      const out: number[] = [];
      let finishReason: GenerateResult['finishReason'] = 'length';
      while (out.length < request.maxNewTokens) {
        const next = sampler.sample(logits);
        if (request.stopAtEos && l.model.eosIds.includes(next)) {
          finishReason = 'eos';
          break;
        }
        out.push(next);
        this.host.post({ type: 'token', id: request.id, tokenId: next, text: '' });
        if (out.length >= request.maxNewTokens || l.held.length + 1 > context) break;
        logits = await model.forward([next], 'last');
        l.held.push(next);
        recordStep();
        if (this.cancelled.has(request.id)) {
          finishReason = 'cancelled';
          break;
        }
      }
      const attention = sparse ? attentionReport(model.attentionCounters(), sparse, request.trace ? steps.slice(0, out.length) : undefined) : undefined;
      model.setAttention(null);
      done({ prefilledTokens: ids.length - reused, ids: out, text: '', finishReason, ...(attention ? { attention } : {}) });
    } catch (e) {
      // A failed forward leaves the cache in an unknown state: never reuse it.
      model.setAttention(null);
      l.held = [];
      model.truncate(0);
      throw e;
    }
  }

  private failureOf(e: unknown): EngineFailure {
    if (e instanceof EngineFailure) return e;
    if (e instanceof GpuUnavailableError) return new EngineFailure('backend-unavailable', e.message);
    if (e instanceof ModelError) return new EngineFailure(/missing|does not exist/.test(e.message) ? 'model-missing' : 'model-invalid', e.message);
    if (e instanceof ProtocolError) return new EngineFailure('bad-request', e.message);
    const lost = this.gpu?.lostReason();
    if (lost) {
      this.loaded = null;
      this.gpu = null;
      return new EngineFailure('backend-unavailable', `${lost}; the CPU engine can be used instead`);
    }
    return new EngineFailure('internal', (e as Error)?.message ?? String(e));
  }
}

/** The protocol's report of a sparse generation, from the selection's counters (as src/engine/process.ts builds it). */
function attentionReport(c: Counters | null, settings: AttentionSettings, steps: StepHeadSelection[][][] | undefined): AttentionReport {
  const counters = c
    ? { steps: c.steps, scoringPasses: c.scoringPasses, certifyPasses: c.certifyPasses, certified: c.certified, expanded: c.expanded, entriesRead: c.entriesRead, entriesContext: c.entriesContext }
    : { steps: 0, scoringPasses: 0, certifyPasses: 0, certified: 0, expanded: 0, entriesRead: 0, entriesContext: 0 };
  return { settings, counters, ...(steps ? { steps } : {}) };
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}
