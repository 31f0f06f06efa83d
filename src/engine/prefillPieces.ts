// How many tokens each forward call of a prefill takes. Between calls the engine reports progress
// and looks for a cancel, so a call should stay short; but every call has a fixed cost (the CUDA
// backend flushes its KV to the host, and its attention converted the whole context's keys once per
// call where it cannot keep them), so on a GPU a fixed piece of 128 tokens made a long prefill
// several times slower than large ones.
// The size therefore follows the measured time: it starts small, at most doubles (or halves) per
// call toward `targetMs`, and stays a multiple of `step` within [step, max]; from `wholeChunk` on, a
// multiple of it, so that a backend that runs that many tokens at once (CUDA: 2048) gets whole chunks
// and its GEMM sees few distinct sizes (cuBLASLt picks an algorithm per size, once).

export interface PieceLimits {
  /** Tokens of the first call, and the granularity of sizes below `wholeChunk`. */
  step: number;
  /** The granularity from there on. */
  wholeChunk: number;
  max: number;
  targetMs: number;
}

export const PREFILL_PIECES: PieceLimits = { step: 128, wholeChunk: 2048, max: 16384, targetMs: 250 };

export class PrefillPieces {
  private size: number;

  constructor(private readonly limits: PieceLimits = PREFILL_PIECES) {
    this.size = limits.step;
  }

  /** Tokens for the next forward call. */
  get next(): number {
    return this.size;
  }

  /** A call of `tokens` tokens (the last may be shorter than asked) took `ms` milliseconds. */
  took(tokens: number, ms: number): void {
    const { step, wholeChunk, max, targetMs } = this.limits;
    if (tokens < this.size && ms < targetMs) return;  // a short last piece says little about the next size
    const factor = ms > 0 ? Math.min(2, Math.max(0.5, targetMs / ms)) : 2;
    const wanted = tokens * factor, unit = wanted >= wholeChunk ? wholeChunk : step;
    this.size = Math.min(max, Math.max(step, Math.floor(wanted / unit) * unit));
  }
}
