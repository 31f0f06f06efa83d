/// <reference types="@webgpu/types" />
// The Llama-family forward pass on WebGPU (Llama 2/3 with llama3 RoPE scaling, Mistral with any
// head_dim, Qwen2 with q/k/v bias, tied or untied embeddings), one sequence with a KV cache.
// Tokens go through in chunks of at most `maxChunk` rows; each chunk is one queue submission:
//   embedding → per layer [rmsnorm, q/k/v matmul (+ bias), RoPE, append k/v to the cache,
//   attention, o matmul, residual, rmsnorm, gate/up matmul, SwiGLU, down matmul, residual]
//   → final rmsnorm → lm_head (every row, or only the last).

import type { ModelArch } from '../../src/model/native';
import { encodeDispatches, STEP_BYTES, type Dispatch, Kernels } from './kernel';
import { add } from './ops/add';
import { attention } from './ops/attention';
import { biasAdd } from './ops/bias_add';
import { embedding } from './ops/embedding';
import { matmul } from './ops/matmul';
import { rmsnorm } from './ops/rmsnorm';
import { rope, ropeInverseFrequencies, ropeTable } from './ops/rope';
import { swiglu } from './ops/swiglu';
import { allocate } from './weights';

export type LogitsWanted = 'none' | 'last' | 'all';

export interface GpuModelOptions {
  /** Most positions the KV cache holds. */
  contextTokens: number;
  /** Most rows per submission (prefill chunk). */
  maxChunk: number;
}

interface LayerPlan {
  /** Up to the new k and v rows (norm, projections, bias, RoPE). */
  beforeCache: Dispatch[];
  /** From attention to the end of the layer. */
  afterCache: Dispatch[];
  kCache: GPUBuffer;
  vCache: GPUBuffer;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class GpuModel {
  /** Tokens in the KV cache (the next token's position). */
  length = 0;

  private constructor(
    readonly arch: ModelArch,
    readonly options: GpuModelOptions,
    private readonly device: GPUDevice,
    private readonly io: {
      ids: GPUBuffer; ropeTable: GPUBuffer; step: GPUBuffer; lastStep: GPUBuffer;
      x: GPUBuffer; k: GPUBuffer; v: GPUBuffer; normed: GPUBuffer; lastRow: GPUBuffer; logits: GPUBuffer; readback: GPUBuffer;
    },
    private readonly plan: { embed: Dispatch; layers: LayerPlan[]; finalNorm: Dispatch; headAll: Dispatch; headLast: Dispatch },
    private readonly owned: GPUBuffer[],
    private readonly weights: Map<string, GPUBuffer>,
    private readonly inverseFrequencies: Float32Array,
  ) {}

  /**
   * Builds the scratch buffers, the KV cache and every dispatch over `weights` (f32 buffers by
   * tensor name), which the model then owns.
   */
  static async create(k: Kernels, arch: ModelArch, weights: Map<string, GPUBuffer>, options: GpuModelOptions): Promise<GpuModel> {
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
    const w = (name: string) => {
      const b = weights.get(name);
      if (!b) throw new Error(`internal: weight "${name}" was not uploaded`);
      return b;
    };

    try {
      const io = {
        step: await buffer(STEP_BYTES / 4, 'step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        lastStep: await buffer(STEP_BYTES / 4, 'last step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        ids: await buffer(C, 'token ids'),                          // [C] u32
        ropeTable: await buffer(C * headDim, 'RoPE table'),        // [C, headDim / 2, 2]
        x: await buffer(C * d, 'hidden state'),                    // [C, d] residual stream
        normed: await buffer(C * d, 'normed hidden state'),        // [C, d]
        k: await buffer(C * kvDim, 'k rows'),                      // [C, kvHeads, headDim]
        v: await buffer(C * kvDim, 'v rows'),                      // [C, kvHeads, headDim]
        lastRow: await buffer(d, 'last row'),                      // [1, d]
        logits: await buffer(C * vocab, 'logits'),                 // [C, vocab]
        readback: await buffer(C * vocab, 'logits readback', GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST),
      };
      const q = await buffer(C * qDim, 'q rows');                  // [C, heads, headDim]
      const attended = await buffer(C * qDim, 'attention output'); // [C, heads, headDim]
      const projected = await buffer(C * d, 'projection output');  // [C, d]
      const gate = await buffer(C * f, 'gate');                    // [C, f]
      const up = await buffer(C * f, 'up');                        // [C, f]

      const step = io.step;
      const layers: LayerPlan[] = [];
      for (let l = 0; l < arch.numLayers; l++) {
        const p = `model.layers.${l}.`;
        const kCache = await buffer(options.contextTokens * kvDim, `layer ${l} k cache`); // [context, kvHeads, headDim]
        const vCache = await buffer(options.contextTokens * kvDim, `layer ${l} v cache`); // [context, kvHeads, headDim]
        const beforeCache: Dispatch[] = [
          rmsnorm(k, step, { x: io.x, w: w(p + 'input_layernorm.weight'), out: io.normed, d, eps: arch.rmsNormEps }),
          matmul(k, step, { x: io.normed, w: w(p + 'self_attn.q_proj.weight'), out: q, m: qDim, k: d }),
          matmul(k, step, { x: io.normed, w: w(p + 'self_attn.k_proj.weight'), out: io.k, m: kvDim, k: d }),
          matmul(k, step, { x: io.normed, w: w(p + 'self_attn.v_proj.weight'), out: io.v, m: kvDim, k: d }),
        ];
        if (arch.attentionBias) {
          beforeCache.push(
            biasAdd(k, step, { x: q, b: w(p + 'self_attn.q_proj.bias'), m: qDim }),
            biasAdd(k, step, { x: io.k, b: w(p + 'self_attn.k_proj.bias'), m: kvDim }),
            biasAdd(k, step, { x: io.v, b: w(p + 'self_attn.v_proj.bias'), m: kvDim }),
          );
        }
        beforeCache.push(
          rope(k, step, { x: q, table: io.ropeTable, heads, headDim }),
          rope(k, step, { x: io.k, table: io.ropeTable, heads: kvHeads, headDim }),
        );
        const afterCache: Dispatch[] = [
          attention(k, step, { q, kCache, vCache, out: attended, heads, kvHeads, headDim }),
          matmul(k, step, { x: attended, w: w(p + 'self_attn.o_proj.weight'), out: projected, m: d, k: qDim }),
          add(k, step, { x: io.x, y: projected, d }),
          rmsnorm(k, step, { x: io.x, w: w(p + 'post_attention_layernorm.weight'), out: io.normed, d, eps: arch.rmsNormEps }),
          matmul(k, step, { x: io.normed, w: w(p + 'mlp.gate_proj.weight'), out: gate, m: f, k: d }),
          matmul(k, step, { x: io.normed, w: w(p + 'mlp.up_proj.weight'), out: up, m: f, k: d }),
          swiglu(k, step, { gate, up, f }),
          matmul(k, step, { x: gate, w: w(p + 'mlp.down_proj.weight'), out: projected, m: d, k: f }),
          add(k, step, { x: io.x, y: projected, d }),
        ];
        layers.push({ beforeCache, afterCache, kCache, vCache });
      }
      const head = w(arch.tieEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
      const plan = {
        embed: embedding(k, step, { ids: io.ids, table: w('model.embed_tokens.weight'), out: io.x, d, vocab }),
        layers,
        finalNorm: rmsnorm(k, step, { x: io.x, w: w('model.norm.weight'), out: io.normed, d, eps: arch.rmsNormEps }),
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
    this.length = length;
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

  private async forwardChunk(ids: number[], wanted: LogitsWanted): Promise<Float32Array> {
    const { device, io, plan } = this;
    const rows = ids.length;
    const pos0 = this.length;
    const kvRowBytes = this.arch.numKvHeads * this.arch.headDim * 4;
    const queue = device.queue;
    queue.writeBuffer(io.step, 0, new Uint32Array([rows, pos0]));
    queue.writeBuffer(io.lastStep, 0, new Uint32Array([1, pos0 + rows - 1]));
    queue.writeBuffer(io.ids, 0, new Uint32Array(ids));
    queue.writeBuffer(io.ropeTable, 0, ropeTable(this.inverseFrequencies, pos0, rows));

    const encoder = device.createCommandEncoder({ label: 'forward' });
    let pass = encoder.beginComputePass();
    encodeDispatches(pass, [plan.embed], rows);
    for (const layer of plan.layers) {
      encodeDispatches(pass, layer.beforeCache, rows);
      pass.end();
      encoder.copyBufferToBuffer(io.k, 0, layer.kCache, pos0 * kvRowBytes, rows * kvRowBytes);
      encoder.copyBufferToBuffer(io.v, 0, layer.vCache, pos0 * kvRowBytes, rows * kvRowBytes);
      pass = encoder.beginComputePass();
      encodeDispatches(pass, layer.afterCache, rows);
    }
    encodeDispatches(pass, [plan.finalNorm], rows);
    if (wanted === 'all') encodeDispatches(pass, [plan.headAll], rows);
    pass.end();
    const vocabBytes = this.arch.vocabSize * 4;
    let readBytes = 0;
    if (wanted === 'last') {
      const rowBytes = this.arch.hiddenSize * 4;
      encoder.copyBufferToBuffer(io.normed, (rows - 1) * rowBytes, io.lastRow, 0, rowBytes);
      pass = encoder.beginComputePass();
      encodeDispatches(pass, [plan.headLast], 1);
      pass.end();
      readBytes = vocabBytes;
    } else if (wanted === 'all') {
      readBytes = rows * vocabBytes;
    }
    if (readBytes > 0) encoder.copyBufferToBuffer(io.logits, 0, io.readback, 0, readBytes);
    queue.submit([encoder.finish()]);
    this.length = pos0 + rows;

    if (readBytes === 0) {
      await queue.onSubmittedWorkDone();
      return new Float32Array(0);
    }
    await io.readback.mapAsync(GPUMapMode.READ, 0, readBytes);
    const logits = new Float32Array(io.readback.getMappedRange(0, readBytes).slice(0));
    io.readback.unmap();
    return logits;
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    for (const b of this.weights.values()) b.destroy();
  }
}
