/// <reference types="@webgpu/types" />
// The Llama-family forward pass on WebGPU (Llama 2/3 with llama3 RoPE scaling, Mistral with any
// head_dim, Qwen2 with q/k/v bias, tied or untied embeddings), one sequence with a KV cache.
// Tokens go through in chunks of at most `maxChunk` rows; each chunk is one queue submission:
//   embedding → per layer [rmsnorm, q/k/v matmul (+ bias), RoPE, append k/v to the cache,
//   attention, o matmul, residual, rmsnorm, gate/up matmul, SwiGLU, down matmul, residual]
//   → final rmsnorm → lm_head (every row, or only the last).
// Sparse decode (setAttention): a one-token forward then reads only selected KV blocks. Per layer,
// q and the new key row come back to the CPU, where prhs/ chooses the blocks exactly as the CPU
// reference does (from a mirror of the keys), and the GPU attends over those blocks alone.

import type { ModelArch } from '../../src/model/native';
import type { AttentionSettings } from '../../src/trace/attention';
import { encodeDispatches, STEP_BYTES, type Dispatch, Kernels } from './kernel';
import { add } from './ops/add';
import { attention } from './ops/attention';
import { biasAdd } from './ops/bias_add';
import { embedding } from './ops/embedding';
import { matmul } from './ops/matmul';
import { rmsnorm } from './ops/rmsnorm';
import { rope, ropeInverseFrequencies, ropeTable } from './ops/rope';
import { sparseAttention } from './ops/sparse_attention';
import { swiglu } from './ops/swiglu';
import { LayerKeys } from './prhs/blocks';
import { DecodeSelection, type Counters, type HeadRecord } from './prhs/decodeAttention';
import type { GpuTensor } from './tensor';
import { allocate } from './weights';

export type LogitsWanted = 'none' | 'last' | 'all';

export interface GpuModelOptions {
  /** Most positions the KV cache holds. */
  contextTokens: number;
  /** Most rows per submission (prefill chunk). */
  maxChunk: number;
  /** Positions per KV block: the unit the sparse decode path selects. */
  kvBlockSize: number;
}

/** The latest sparse decode step: the selection per layer and KV head (as the native engine's attentionStep()). */
export interface AttentionStep {
  step: number;
  /** [layer][kvHead] */
  layers: HeadRecord[][];
}

interface LayerPlan {
  /** Up to the new k and v rows (norm, projections, bias, RoPE). */
  beforeCache: Dispatch[];
  /** Dense causal attention over the cache. */
  attention: Dispatch;
  /** Decode attention over the blocks listed in `selection`. */
  sparseAttention: Dispatch;
  /** From the attention output to the end of the layer. */
  afterAttention: Dispatch[];
  kCache: GPUBuffer;
  vCache: GPUBuffer;
  /** u32 counts [kvHeads] then block lists [kvHeads, maxBlocks], written per sparse step. */
  selection: GPUBuffer;
}

/** Sees what each sparse step's selection read: the layer, q [heads, headDim], and the key mirror. */
export type SelectionObserver = (layer: number, q: Float32Array, keys: LayerKeys) => void;

interface Sparse {
  settings: AttentionSettings;
  observer: SelectionObserver | null;
  selection: DecodeSelection;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class GpuModel {
  /** Tokens in the KV cache (the next token's position). */
  length = 0;
  private sparse: Sparse | null = null;
  /**
   * Per layer, the cached keys on the CPU for the sparse selection; null until the first sparse
   * step. Kept across generations: dense forwards leave them behind the cache, and the next sparse
   * step reads back only the positions they lack (e.g. a new question after a reused repository).
   */
  private keyMirrors: LayerKeys[] | null = null;

  private constructor(
    readonly arch: ModelArch,
    readonly options: GpuModelOptions,
    private readonly device: GPUDevice,
    private readonly io: {
      ids: GPUBuffer; ropeTable: GPUBuffer; step: GPUBuffer; lastStep: GPUBuffer;
      x: GPUBuffer; q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; normed: GPUBuffer; lastRow: GPUBuffer; logits: GPUBuffer; readback: GPUBuffer;
      /** q and the new key row of a decode step, for the CPU-side selection. */
      probe: GPUBuffer;
    },
    private readonly plan: { embed: Dispatch; layers: LayerPlan[]; finalNorm: Dispatch; headAll: Dispatch; headLast: Dispatch },
    private readonly owned: GPUBuffer[],
    private readonly weights: Map<string, GpuTensor>,
    private readonly inverseFrequencies: Float32Array,
  ) {}

  /**
   * Builds the scratch buffers, the KV cache and every dispatch over `weights` (f32 buffers by
   * tensor name), which the model then owns.
   */
  static async create(k: Kernels, arch: ModelArch, weights: Map<string, GpuTensor>, options: GpuModelOptions): Promise<GpuModel> {
    const device = k.device;
    const { hiddenSize: d, intermediateSize: f, numHeads: heads, numKvHeads: kvHeads, headDim, vocabSize: vocab } = arch;
    const qDim = heads * headDim;
    const kvDim = kvHeads * headDim;
    const C = options.maxChunk;
    const owned: GPUBuffer[] = [];
    const buffer = async (elements: number, what: string, usage = STORAGE) => {
      const b = await allocate(device, elements * 4, usage, what);
      owned.push(b);
      return b;
    };
    const w = (name: string): GpuTensor => {
      const t = weights.get(name);
      if (!t) throw new Error(`internal: weight "${name}" was not uploaded`);
      return t;
    };
    // Vectors (norms, biases) are always uploaded as f32.
    const v = (name: string): GPUBuffer => w(name).buffer;

    try {
      const io = {
        step: await buffer(STEP_BYTES / 4, 'step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        lastStep: await buffer(STEP_BYTES / 4, 'last step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        ids: await buffer(C, 'token ids'),                          // [C] u32
        ropeTable: await buffer(C * headDim, 'RoPE table'),        // [C, headDim / 2, 2]
        x: await buffer(C * d, 'hidden state'),                    // [C, d] residual stream
        normed: await buffer(C * d, 'normed hidden state'),        // [C, d]
        q: await buffer(C * qDim, 'q rows'),                       // [C, heads, headDim]
        k: await buffer(C * kvDim, 'k rows'),                      // [C, kvHeads, headDim]
        v: await buffer(C * kvDim, 'v rows'),                      // [C, kvHeads, headDim]
        lastRow: await buffer(d, 'last row'),                      // [1, d]
        logits: await buffer(C * vocab, 'logits'),                 // [C, vocab]
        readback: await buffer(C * vocab, 'logits readback', GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST),
        probe: await buffer(qDim + kvDim, 'q and k readback', GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST), // [qDim + kvDim]
      };
      const q = io.q;
      const maxBlocks = Math.ceil(options.contextTokens / options.kvBlockSize);
      const attended = await buffer(C * qDim, 'attention output'); // [C, heads, headDim]
      const projected = await buffer(C * d, 'projection output');  // [C, d]
      const gate = await buffer(C * f, 'gate');                    // [C, f]
      const up = await buffer(C * f, 'up');                        // [C, f]

      const step = io.step;
      const layers: LayerPlan[] = [];
      for (let l = 0; l < arch.numLayers; l++) {
        const p = `model.layers.${l}.`;
        const cacheName = (kv: string) => `the layer ${l} ${kv} cache for ${options.contextTokens} positions (a smaller contextTokens shrinks it)`;
        const kCache = await buffer(options.contextTokens * kvDim, cacheName('k')); // [context, kvHeads, headDim]
        const vCache = await buffer(options.contextTokens * kvDim, cacheName('v')); // [context, kvHeads, headDim]
        const selection = await buffer(kvHeads * (1 + maxBlocks), `layer ${l} block selection`); // u32
        const beforeCache: Dispatch[] = [
          rmsnorm(k, step, { x: io.x, w: v(p + 'input_layernorm.weight'), out: io.normed, d, eps: arch.rmsNormEps }),
          matmul(k, step, { x: io.normed, w: w(p + 'self_attn.q_proj.weight'), out: q, m: qDim, k: d }),
          matmul(k, step, { x: io.normed, w: w(p + 'self_attn.k_proj.weight'), out: io.k, m: kvDim, k: d }),
          matmul(k, step, { x: io.normed, w: w(p + 'self_attn.v_proj.weight'), out: io.v, m: kvDim, k: d }),
        ];
        if (arch.attentionBias) {
          beforeCache.push(
            biasAdd(k, step, { x: q, b: v(p + 'self_attn.q_proj.bias'), m: qDim }),
            biasAdd(k, step, { x: io.k, b: v(p + 'self_attn.k_proj.bias'), m: kvDim }),
            biasAdd(k, step, { x: io.v, b: v(p + 'self_attn.v_proj.bias'), m: kvDim }),
          );
        }
        beforeCache.push(
          rope(k, step, { x: q, table: io.ropeTable, heads, headDim }),
          rope(k, step, { x: io.k, table: io.ropeTable, heads: kvHeads, headDim }),
        );
        const afterAttention: Dispatch[] = [
          matmul(k, step, { x: attended, w: w(p + 'self_attn.o_proj.weight'), out: projected, m: d, k: qDim }),
          add(k, step, { x: io.x, y: projected, d }),
          rmsnorm(k, step, { x: io.x, w: v(p + 'post_attention_layernorm.weight'), out: io.normed, d, eps: arch.rmsNormEps }),
          matmul(k, step, { x: io.normed, w: w(p + 'mlp.gate_proj.weight'), out: gate, m: f, k: d }),
          matmul(k, step, { x: io.normed, w: w(p + 'mlp.up_proj.weight'), out: up, m: f, k: d }),
          swiglu(k, step, { gate, up, f }),
          matmul(k, step, { x: gate, w: w(p + 'mlp.down_proj.weight'), out: projected, m: d, k: f }),
          add(k, step, { x: io.x, y: projected, d }),
        ];
        layers.push({
          beforeCache,
          attention: attention(k, step, { q, kCache, vCache, out: attended, heads, kvHeads, headDim }),
          sparseAttention: sparseAttention(k, step, {
            q, kCache, vCache, selection, out: attended, heads, kvHeads, headDim, blockSize: options.kvBlockSize, maxBlocks,
          }),
          afterAttention,
          kCache,
          vCache,
          selection,
        });
      }
      const head = w(arch.tieEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
      const plan = {
        embed: embedding(k, step, { ids: io.ids, table: w('model.embed_tokens.weight'), out: io.x, d, vocab }),
        layers,
        finalNorm: rmsnorm(k, step, { x: io.x, w: v('model.norm.weight'), out: io.normed, d, eps: arch.rmsNormEps }),
        headAll: matmul(k, step, { x: io.normed, w: head, out: io.logits, m: vocab, k: d }),
        headLast: matmul(k, io.lastStep, { x: io.lastRow, w: head, out: io.logits, m: vocab, k: d }),
      };
      return new GpuModel(arch, options, device, io, plan, owned, weights, ropeInverseFrequencies(arch));
    } catch (e) {
      for (const b of owned) b.destroy();
      throw e;
    }
  }

  /** Bytes of scratch and KV cache this model holds on the GPU (weights not included). */
  get scratchBytes(): number {
    return this.owned.reduce((a, b) => a + b.size, 0);
  }

  /** Forgets positions >= length (the cache rows stay and are overwritten later). */
  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new Error(`cannot truncate a sequence of ${this.length} tokens to ${length}`);
    if (length < this.length && this.sparse) this.setAttention(this.sparse.settings, this.sparse.observer); // blocks change: fresh state
    for (const m of this.keyMirrors ?? []) m.truncate(length);
    this.length = length;
  }

  /**
   * Sparse decode attention (PrHS or a baseline) for the one-token forwards that follow, with fresh
   * selection state; null: dense. Prefill (several tokens at once) stays dense, as in the native engine.
   */
  setAttention(settings: AttentionSettings | null, observer: SelectionObserver | null = null): void {
    if (!settings) {
      this.sparse = null;
      return;
    }
    const a = this.arch;
    this.sparse = { settings, observer, selection: new DecodeSelection(settings, a.numLayers, a.numHeads, a.numKvHeads, a.headDim) };
  }

  /** Totals since setAttention (as the native engine's attentionCounters()); null when dense. */
  attentionCounters(): Counters | null {
    return this.sparse ? { ...this.sparse.selection.counters } : null;
  }

  /** The latest sparse decode step's selection; null before the first one or when dense. */
  attentionStep(): AttentionStep | null {
    const s = this.sparse?.selection;
    if (!s || s.step < 0) return null;
    return { step: s.step, layers: s.layers() };
  }

  /**
   * Appends `ids` to the sequence and runs them through the model. Returns logits [ids.length, vocab]
   * ('all'), [vocab] ('last'), or an empty array ('none').
   */
  async forward(ids: ArrayLike<number>, wanted: LogitsWanted): Promise<Float32Array> {
    const vocab = this.arch.vocabSize;
    if (this.length + ids.length > this.options.contextTokens) {
      throw new RangeError(`${this.length + ids.length} tokens do not fit the context of ${this.options.contextTokens}`);
    }
    for (let i = 0; i < ids.length; i++) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab) throw new RangeError(`token id ${ids[i]} is outside the vocabulary (${vocab})`);
    }
    if (this.sparse && ids.length === 1) return this.forwardSparse(ids[0], wanted);
    const out = new Float32Array(wanted === 'all' ? ids.length * vocab : wanted === 'last' ? vocab : 0);
    for (let start = 0; start < ids.length; start += this.options.maxChunk) {
      const rows = Math.min(this.options.maxChunk, ids.length - start);
      const chunk = Array.from({ length: rows }, (_, i) => ids[start + i]);
      const last = start + rows === ids.length;
      const chunkWants: LogitsWanted = wanted === 'all' ? 'all' : wanted === 'last' && last ? 'last' : 'none';
      const logits = await this.forwardChunk(chunk, chunkWants);
      if (chunkWants === 'all') out.set(logits, start * vocab);
      else if (chunkWants === 'last') out.set(logits);
    }
    return out;
  }

  /** Writes the step uniforms, ids and RoPE table for `rows` tokens at positions pos0.. */
  private writeStep(ids: number[], pos0: number): void {
    const { io } = this;
    const queue = this.device.queue;
    queue.writeBuffer(io.step, 0, new Uint32Array([ids.length, pos0]));
    queue.writeBuffer(io.lastStep, 0, new Uint32Array([1, pos0 + ids.length - 1]));
    queue.writeBuffer(io.ids, 0, new Uint32Array(ids));
    queue.writeBuffer(io.ropeTable, 0, ropeTable(this.inverseFrequencies, pos0, ids.length));
  }

  /** Appends the layer's new k and v rows to its cache at pos0. */
  private encodeCacheAppend(encoder: GPUCommandEncoder, layer: LayerPlan, pos0: number, rows: number): void {
    const kvRowBytes = this.arch.numKvHeads * this.arch.headDim * 4;
    encoder.copyBufferToBuffer(this.io.k, 0, layer.kCache, pos0 * kvRowBytes, rows * kvRowBytes);
    encoder.copyBufferToBuffer(this.io.v, 0, layer.vCache, pos0 * kvRowBytes, rows * kvRowBytes);
  }

  /** Final norm and lm_head; returns the bytes of logits copied to the readback buffer. */
  private encodeHead(encoder: GPUCommandEncoder, pass: GPUComputePassEncoder, rows: number, wanted: LogitsWanted): number {
    const { io, plan } = this;
    encodeDispatches(pass, [plan.finalNorm], rows);
    if (wanted === 'all') encodeDispatches(pass, [plan.headAll], rows);
    pass.end();
    const vocabBytes = this.arch.vocabSize * 4;
    let readBytes = 0;
    if (wanted === 'last') {
      const rowBytes = this.arch.hiddenSize * 4;
      encoder.copyBufferToBuffer(io.normed, (rows - 1) * rowBytes, io.lastRow, 0, rowBytes);
      const headPass = encoder.beginComputePass();
      encodeDispatches(headPass, [plan.headLast], 1);
      headPass.end();
      readBytes = vocabBytes;
    } else if (wanted === 'all') {
      readBytes = rows * vocabBytes;
    }
    if (readBytes > 0) encoder.copyBufferToBuffer(io.logits, 0, io.readback, 0, readBytes);
    return readBytes;
  }

  private async readLogits(readBytes: number): Promise<Float32Array> {
    const { io } = this;
    if (readBytes === 0) {
      await this.device.queue.onSubmittedWorkDone();
      return new Float32Array(0);
    }
    await io.readback.mapAsync(GPUMapMode.READ, 0, readBytes);
    const logits = new Float32Array(io.readback.getMappedRange(0, readBytes).slice(0));
    io.readback.unmap();
    return logits;
  }

  private async forwardChunk(ids: number[], wanted: LogitsWanted): Promise<Float32Array> {
    const { device, plan } = this;
    const rows = ids.length;
    const pos0 = this.length;
    this.writeStep(ids, pos0);
    const encoder = device.createCommandEncoder({ label: 'forward' });
    let pass = encoder.beginComputePass();
    encodeDispatches(pass, [plan.embed], rows);
    for (const layer of plan.layers) {
      encodeDispatches(pass, layer.beforeCache, rows);
      pass.end();
      this.encodeCacheAppend(encoder, layer, pos0, rows);
      pass = encoder.beginComputePass();
      encodeDispatches(pass, [layer.attention, ...layer.afterAttention], rows);
    }
    const readBytes = this.encodeHead(encoder, pass, rows, wanted);
    device.queue.submit([encoder.finish()]);
    this.length = pos0 + rows;
    return this.readLogits(readBytes);
  }

  /**
   * One decode step with sparse attention: per layer, the GPU computes q, k and v and appends k, v
   * to the cache; q and the key row come back; the CPU selects blocks; the GPU attends over them.
   */
  private async forwardSparse(id: number, wanted: LogitsWanted): Promise<Float32Array> {
    const sparse = this.sparse!;
    const { device, plan, io, arch } = this;
    const pos0 = this.length;
    const mirrors = await this.syncKeyMirrors();
    const qDim = arch.numHeads * arch.headDim;
    const kvDim = arch.numKvHeads * arch.headDim;
    const maxBlocks = Math.ceil(this.options.contextTokens / this.options.kvBlockSize);
    this.writeStep([id], pos0);
    let readBytes = 0;
    for (let l = 0; l < plan.layers.length; l++) {
      const layer = plan.layers[l];
      const before = device.createCommandEncoder({ label: `sparse decode layer ${l}: q, k, v` });
      const pass = before.beginComputePass();
      if (l === 0) encodeDispatches(pass, [plan.embed], 1);
      encodeDispatches(pass, layer.beforeCache, 1);
      pass.end();
      this.encodeCacheAppend(before, layer, pos0, 1);
      before.copyBufferToBuffer(io.q, 0, io.probe, 0, qDim * 4);
      before.copyBufferToBuffer(io.k, 0, io.probe, qDim * 4, kvDim * 4);
      device.queue.submit([before.finish()]);
      await io.probe.mapAsync(GPUMapMode.READ);
      const probe = new Float32Array(io.probe.getMappedRange().slice(0));
      io.probe.unmap();

      const mirror = mirrors[l];
      mirror.append(probe.subarray(qDim, qDim + kvDim));
      const q = probe.subarray(0, qDim);
      const records = sparse.selection.select(l, q, mirror);
      sparse.observer?.(l, q, mirror);
      const lists = new Uint32Array(arch.numKvHeads * (1 + maxBlocks));
      records.forEach((r, h) => {
        lists[h] = r.blocks.length;
        lists.set(r.blocks, arch.numKvHeads + h * maxBlocks);
      });
      device.queue.writeBuffer(layer.selection, 0, lists);

      const after = device.createCommandEncoder({ label: `sparse decode layer ${l}: attention and MLP` });
      const rest = after.beginComputePass();
      encodeDispatches(rest, [layer.sparseAttention, ...layer.afterAttention], 1);
      if (l === plan.layers.length - 1) readBytes = this.encodeHead(after, rest, 1, wanted);
      else rest.end();
      device.queue.submit([after.finish()]);
    }
    this.length = pos0 + 1;
    return this.readLogits(readBytes);
  }

  /** The key mirrors, holding every layer's cached keys [0, length): the rows they lack are read back. */
  private async syncKeyMirrors(): Promise<LayerKeys[]> {
    const { arch, device } = this;
    this.keyMirrors ??= this.plan.layers.map(() => new LayerKeys(this.options.contextTokens, arch.numKvHeads, arch.headDim, this.options.kvBlockSize));
    const rowBytes = arch.numKvHeads * arch.headDim * 4;
    for (const m of this.keyMirrors) if (m.context > this.length) m.truncate(this.length); // after a failed step
    const from = Math.min(...this.keyMirrors.map((m) => m.context));
    if (from === this.length) return this.keyMirrors;
    const bytes = (this.length - from) * rowBytes;
    const staging = await allocate(device, bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 'key mirror readback');
    try {
      for (let l = 0; l < this.plan.layers.length; l++) {
        const mirror = this.keyMirrors[l];
        const start = mirror.context * rowBytes;
        const size = this.length * rowBytes - start;
        if (size === 0) continue;
        const encoder = device.createCommandEncoder();
        encoder.copyBufferToBuffer(this.plan.layers[l].kCache, start, staging, 0, size);
        device.queue.submit([encoder.finish()]);
        await staging.mapAsync(GPUMapMode.READ, 0, size);
        mirror.append(new Float32Array(staging.getMappedRange(0, size).slice(0)));
        staging.unmap();
      }
      return this.keyMirrors;
    } finally {
      staging.destroy();
    }
  }

  destroy(): void {
    this.keyMirrors = null;
    for (const b of this.owned) b.destroy();
    for (const t of this.weights.values()) t.buffer.destroy();
  }
}
