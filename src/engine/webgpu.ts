// WebGpuEngineClient: the extension host's side of the WebGPU engine, which runs in a hidden
// webview (webview/gpu/main.ts). It offers what the pipeline uses from EngineClient (load,
// generate, tokenize, cancel, dispose, modelInfo) over the webview's message channel.
// The webview engine works on token ids; this side tokenizes text prompts and turns generated ids
// into text with the model's TextTokenizer, so both engines give the same text for the same ids.
// No vscode import: the channel is anything with postMessage/onDidReceiveMessage (a vscode.Webview).
//
// Wiring: src/ui/answerWorker.ts holds the client on the answer worker (tokenization stays off the
// extension host); its channel is relayed to the webview that webgpuWebview.ts opens (gpuRelay.ts).
// A load that fails with code 'backend-unavailable' (no adapter, lost device, model above the
// adapter's limits) is the signal to fall back to the CPU engine; its message says why.

import { ModelError } from '../model/errors';
import { TextTokenizer } from '../model/tokenizer';
import { EngineError, Generation, type GenerateOptions, type LoadOptions, type Progress } from './client';
import {
  parseReply,
  type GenerateResult, type ModelInfo, type Reply, type Request, type SamplingParams,
} from './protocol';

export interface WebviewChannel {
  postMessage(message: unknown): unknown;
  onDidReceiveMessage(listener: (message: unknown) => void): { dispose(): void };
}

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (error: EngineError) => void;
  onReply?: (reply: Reply) => void;
}

const DEFAULT_SAMPLING: SamplingParams = { temperature: 0, topP: 1, seed: 0 };

export class WebGpuEngineClient {
  private readonly pending = new Map<number, Pending>();
  private readonly subscription: { dispose(): void };
  private readonly started: Promise<void>;
  private nextId = 1;
  private info: ModelInfo | null = null;
  private tokenizer: TextTokenizer | null = null;
  private disposed = false;

  /**
   * `toWebviewUri` maps a model folder's path to the URL the webview fetches it from. The webview's
   * script says 'engine-ready' once it listens; requests wait for that.
   */
  constructor(private readonly channel: WebviewChannel, private readonly toWebviewUri: (dir: string) => string) {
    let markStarted!: () => void;
    this.started = new Promise((resolve) => (markStarted = resolve));
    this.subscription = channel.onDidReceiveMessage((raw) => {
      if ((raw as { type?: unknown } | null)?.type === 'engine-ready') markStarted();
      else this.onMessage(raw);
    });
  }

  /** The model loaded last (null before the first load); modelDir is the folder's path. */
  get modelInfo(): ModelInfo | null {
    return this.info;
  }

  async load(options: LoadOptions, onProgress?: (p: Progress) => void): Promise<ModelInfo> {
    let tokenizer: TextTokenizer;
    try {
      tokenizer = TextTokenizer.load(options.modelDir);
    } catch (e) {
      if (e instanceof ModelError) throw new EngineError(/missing|does not exist/.test(e.message) ? 'model-missing' : 'model-invalid', e.message);
      throw e;
    }
    const reply = await this.request(
      {
        type: 'load', id: this.nextId++, modelDir: this.toWebviewUri(options.modelDir), backend: 'webgpu',
        kvBlockSize: options.kvBlockSize ?? 32, contextTokens: options.contextTokens ?? 0, threads: 0,
      },
      (r) => { if (r.type === 'progress') onProgress?.({ phase: r.phase, done: r.done, total: r.total }); },
    );
    if (reply.type !== 'ready') throw new EngineError('internal', `the WebGPU engine answered a load request with "${reply.type}"`);
    this.tokenizer = tokenizer;
    this.info = { ...reply.info, modelDir: options.modelDir };
    return this.info;
  }

  generate(options: GenerateOptions): Generation {
    const id = this.nextId++;
    return new Generation(
      id,
      async (push) => {
        const tokenizer = this.tokenizer;
        if (!tokenizer) throw new EngineError('not-loaded', 'no model is loaded: load one first');
        const ids = 'text' in options.prompt ? tokenizer.encode(options.prompt.text, { addSpecialTokens: true }) : options.prompt.ids;
        const streamer = tokenizer.streamer(ids);
        let text = '';
        const emit = (tokenId: number, piece: string) => {
          text += piece;
          options.onToken?.({ tokenId, text: piece });
          push({ type: 'token', tokenId, text: piece });
        };
        const onAbort = () => this.cancel(id);
        if (options.signal?.aborted) onAbort();
        options.signal?.addEventListener('abort', onAbort, { once: true });
        try {
          const request: Request = {
            type: 'generate', id, prompt: { ids }, maxNewTokens: options.maxNewTokens,
            sampling: { ...DEFAULT_SAMPLING, ...options.sampling }, stopAtEos: options.stopAtEos ?? true,
            ...(options.attention ? { attention: options.attention, trace: options.trace ?? false } : {}),
            ...(options.kvAssembly ? { kvAssembly: options.kvAssembly } : {}), // refused by the engine, never dropped
          };
          const reply = await this.request(request, (r) => {
            if (r.type === 'token') emit(r.tokenId, streamer.push(r.tokenId));
            else if (r.type === 'progress') {
              options.onProgress?.({ phase: r.phase, done: r.done, total: r.total });
              push({ type: 'progress', phase: r.phase, done: r.done, total: r.total });
            }
          });
          if (reply.type !== 'generated') throw new EngineError('internal', `the WebGPU engine answered a generate request with "${reply.type}"`);
          const rest = streamer.flush();
          if (rest) emit(reply.result.ids[reply.result.ids.length - 1], rest);
          return { ...reply.result, text } satisfies GenerateResult;
        } finally {
          options.signal?.removeEventListener('abort', onAbort);
        }
      },
      () => this.cancel(id),
    );
  }

  async tokenize(text: string, addSpecialTokens: boolean): Promise<number[]> {
    if (!this.tokenizer) throw new EngineError('not-loaded', 'no model is loaded: load one first');
    return this.tokenizer.encode(text, { addSpecialTokens });
  }

  /** Asks the engine to stop request `target`; it then answers it with finishReason 'cancelled'. */
  cancel(target: number): void {
    // Sent at once, even before the request: the engine remembers cancels of requests still queued.
    void this.started.then(() => this.channel.postMessage({ type: 'cancel', id: this.nextId++, target } satisfies Request));
  }

  /** Fails every pending request: the webview is gone (closed, or its renderer crashed). */
  webviewGone(why: string): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new EngineError('engine-crashed', `the WebGPU engine webview ${why}`));
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.channel.postMessage({ type: 'shutdown', id: this.nextId++ } satisfies Request);
    this.subscription.dispose();
    this.webviewGone('was shut down');
  }

  private async request(request: Request, onReply?: (reply: Reply) => void): Promise<Reply> {
    if (this.disposed) throw new EngineError('engine-crashed', 'the WebGPU engine was shut down');
    await this.started;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(request.id, { resolve, reject, onReply });
      this.channel.postMessage(request);
    });
  }

  private onMessage(raw: unknown): void {
    let reply: Reply;
    try {
      reply = parseReply(raw);
    } catch (e) {
      const id = (raw as { id?: unknown } | null)?.id;
      const p = typeof id === 'number' ? this.pending.get(id) : undefined;
      if (p) {
        this.pending.delete(id as number);
        p.reject(new EngineError('internal', `the WebGPU engine sent an invalid reply: ${(e as Error).message}`));
      }
      return;
    }
    const p = this.pending.get(reply.id);
    if (!p) return;
    if (reply.type === 'progress' || reply.type === 'token') {
      p.onReply?.(reply);
      return;
    }
    this.pending.delete(reply.id);
    if (reply.type === 'error') p.reject(new EngineError(reply.code, reply.message));
    else p.resolve(reply);
  }
}
