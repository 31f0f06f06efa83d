// A small valid selection trace for the panel tests: 4 files in 3 folders over 7 prompt blocks,
// 3 layers × 2 KV heads, 4 generated tokens whose selections differ from step to step.
import { ATTENTION_DEFAULTS } from '../../src/trace/attention';
import { toRanges } from '../../src/trace/blockRanges';
import { summarize } from '../../src/trace/summary';
import { TRACE_FORMAT, TRACE_VERSION, type ManifestBlock, type SelectionTrace, type TraceStep } from '../../src/trace/types';

export const BLOCK = 4;
export const PROMPT = 26; // 7 blocks, the last one partial

// Block → (source, lines) pieces, each piece's token count; every block sums to its size.
const LAYOUT: [string, number, number, number][][] = [
  [['<instructions>', 1, 1, 2], ['README.md', 1, 2, 2]],
  [['README.md', 3, 5, 4]],
  [['README.md', 6, 6, 1], ['src/main.ts', 1, 4, 3]],
  [['src/main.ts', 5, 9, 4]],
  [['src/util/math.ts', 1, 6, 4]],
  [['src/util/math.ts', 7, 8, 1], ['lib/index.js', 1, 3, 3]],
  [['<question>', 1, 1, 2]],
];

function manifest(): ManifestBlock[] {
  let at = 0;
  return LAYOUT.map((pieces, block) => {
    const tokenStart = at;
    const spans = pieces.map(([source, startLine, endLine, n]) => {
      const s = { source, startLine, endLine, tokenStart: at, tokenEnd: at + n };
      at += n;
      return s;
    });
    return { block, tokenStart, tokenEnd: at, spans };
  });
}

// Per step, the blocks layer 0's heads select; deeper layers shift the choice by one block.
const PICKS = [[1, 3], [4, 5], [4, 5], [0, 2]];

export function sampleTrace(): SelectionTrace {
  const steps: TraceStep[] = PICKS.map((pick, step) => {
    const position = PROMPT - 1 + step;
    const contextBlocks = Math.ceil((position + 1) / BLOCK);
    const scored = step === 0 || step === 3;
    return {
      step, position, tokenId: 100 + step, text: ['The', ' answer', ' is', ' here'][step], contextBlocks,
      layers: [0, 1, 2].map((layer) => ({
        layer,
        heads: [0, 1].map((kvHead) => ({
          kvHead,
          blocks: toRanges([0, ...(kvHead === 0 ? pick : [Math.min(pick[0] + layer, 5)]), contextBlocks - 1]),
          source: scored ? ('scored' as const) : ('reused' as const),
          deltaHat: scored ? 0.01 * (step + 1) : null,
          delta: null,
          expanded: 0,
        })),
      })),
    };
  });
  return {
    format: TRACE_FORMAT, version: TRACE_VERSION, createdAt: '2026-11-22T23:30:00Z',
    model: { name: 'fixture', numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 8 },
    kvBlockSize: BLOCK, attention: { ...ATTENTION_DEFAULTS, mode: 'prhs' }, promptTokens: PROMPT,
    manifest: manifest(), steps, summary: summarize(steps, BLOCK),
  };
}
