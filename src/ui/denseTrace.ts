// A selection trace for a generation that ran dense attention (every KV block, every step), built
// from the context's block manifest. It is exact for dense decoding: nothing is dropped, so δ̂ = 0.
// The panel shows it until the engine returns its own PrHS trace for the answer.
import type { BlockManifest } from '../context';
import type { ModelArch } from '../model/native';
import { ATTENTION_DEFAULTS } from '../trace/attention';
import { summarize } from '../trace/summary';
import { TRACE_FORMAT, TRACE_VERSION, type BlockSpan, type ManifestBlock, type SelectionTrace, type TraceStep } from '../trace/types';

export interface DenseGeneration {
  modelName: string;
  arch: Pick<ModelArch, 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim'>;
  /** The context manifest (repository blocks) with the prompt's layout around it. */
  manifest: BlockManifest;
  promptTokens: number;
  /** Generated tokens, in order. */
  tokens: { id: number; text: string }[];
}

/** Maps every prompt block to its spans: template head, repository files, question tail. */
export function traceManifest(m: BlockManifest, promptTokens: number): ManifestBlock[] {
  const bs = m.blockSize;
  const repoStart = m.offset;
  const repoEnd = m.offset + m.totalTokens;
  const byIndex = new Map(m.blocks.map((b) => [b.index, b]));
  const out: ManifestBlock[] = [];
  for (let block = 0; block * bs < promptTokens; block++) {
    const tokenStart = block * bs;
    const tokenEnd = Math.min(promptTokens, tokenStart + bs);
    const spans: BlockSpan[] = [];
    const push = (source: string, startLine: number, endLine: number, a: number, b: number) => {
      if (b > a) spans.push({ source, startLine, endLine, tokenStart: a, tokenEnd: b });
    };
    push('<instructions>', 1, 1, tokenStart, Math.min(tokenEnd, repoStart));
    for (const p of byIndex.get(block)?.pieces ?? []) {
      const file = m.files[p.file];
      const [first, last] = p.lines ?? [1, 1]; // header-only piece: the file's first line
      push(file.path, first, last, repoStart + p.start, repoStart + p.end);
    }
    push('<question>', 1, 1, Math.max(tokenStart, repoEnd), tokenEnd);
    out.push({ block, tokenStart, tokenEnd, spans });
  }
  return out;
}

export function denseTrace(g: DenseGeneration, kvBlockSize: number): SelectionTrace {
  const steps: TraceStep[] = g.tokens.map((t, step) => {
    // Step i's query is the token at position promptTokens - 1 + i (the last prompt token first).
    const position = g.promptTokens - 1 + step;
    const contextBlocks = Math.ceil((position + 1) / kvBlockSize);
    return {
      step, position, tokenId: t.id, text: t.text, contextBlocks,
      layers: Array.from({ length: g.arch.numLayers }, (_, layer) => ({
        layer,
        heads: Array.from({ length: g.arch.numKvHeads }, (_, kvHead) => ({
          kvHead, blocks: [[0, contextBlocks]] as [number, number][], source: 'dense' as const, deltaHat: 0, delta: null, expanded: 0,
        })),
      })),
    };
  });
  return {
    format: TRACE_FORMAT, version: TRACE_VERSION, createdAt: new Date().toISOString(),
    model: { name: g.modelName, numLayers: g.arch.numLayers, numHeads: g.arch.numHeads, numKvHeads: g.arch.numKvHeads, headDim: g.arch.headDim },
    kvBlockSize, attention: { ...ATTENTION_DEFAULTS, mode: 'dense', budget: 1 },
    promptTokens: g.promptTokens,
    manifest: traceManifest(g.manifest, g.promptTokens),
    steps, summary: summarize(steps, kvBlockSize),
  };
}
