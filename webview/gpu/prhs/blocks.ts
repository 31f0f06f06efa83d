// What the selectors read of one layer: keys in the KV cache's layout [context, kvHeads, headDim]
// (the GPU cache's, mirrored on the CPU) and each block's element-wise key min/max per KV head.
// Plays the role of native/prhs/layer_blocks.h for the WebGPU engine.

export class LayerKeys {
  /** [context capacity, kvHeads, headDim] */
  readonly keys: Float32Array;
  /** [block capacity, kvHeads, headDim] */
  readonly keyMin: Float32Array;
  readonly keyMax: Float32Array;
  /** Positions held (the last one is the token whose query attends). */
  context = 0;

  constructor(readonly capacity: number, readonly nKvHeads: number, readonly headDim: number, readonly blockSize: number) {
    const blocks = Math.ceil(capacity / blockSize);
    this.keys = new Float32Array(capacity * nKvHeads * headDim);
    this.keyMin = new Float32Array(blocks * nKvHeads * headDim);
    this.keyMax = new Float32Array(blocks * nKvHeads * headDim);
  }

  get nBlocks(): number {
    return Math.ceil(this.context / this.blockSize);
  }

  fill(b: number): number {
    return Math.min(this.blockSize, this.context - b * this.blockSize);
  }

  /** Offset of key j of block b for KV head h in `keys`; rows of one head are `rowStride` apart. */
  keyOffset(b: number, h: number, j = 0): number {
    return ((b * this.blockSize + j) * this.nKvHeads + h) * this.headDim;
  }

  get rowStride(): number {
    return this.nKvHeads * this.headDim;
  }

  /** Offset of block b's min/max for KV head h in keyMin/keyMax. */
  summaryOffset(b: number, h: number): number {
    return (b * this.nKvHeads + h) * this.headDim;
  }

  /** Drops positions >= length (summaries of the cut block are rebuilt from its remaining keys). */
  truncate(length: number): void {
    this.context = Math.min(this.context, length);
    const b = Math.floor(this.context / this.blockSize);
    if (this.context % this.blockSize !== 0) this.rebuildSummary(b);
  }

  /** Appends key rows [n, kvHeads, headDim]. */
  append(rows: Float32Array): void {
    const n = rows.length / this.rowStride;
    if (this.context + n > this.capacity) throw new RangeError(`the key mirror holds ${this.capacity} positions`);
    this.keys.set(rows, this.context * this.rowStride);
    const first = Math.floor(this.context / this.blockSize);
    this.context += n;
    for (let b = first; b < this.nBlocks; b++) this.rebuildSummary(b);
  }

  private rebuildSummary(b: number): void {
    const d = this.headDim;
    const fill = this.fill(b);
    for (let h = 0; h < this.nKvHeads; h++) {
      const s = this.summaryOffset(b, h);
      for (let i = 0; i < d; i++) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let j = 0; j < fill; j++) {
          const k = this.keys[this.keyOffset(b, h, j) + i];
          if (k < lo) lo = k;
          if (k > hi) hi = k;
        }
        this.keyMin[s + i] = lo;
        this.keyMax[s + i] = hi;
      }
    }
  }
}
