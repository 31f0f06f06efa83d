// Assembles a selection trace from the engine's per-step selections (NativeAttentionStep) and a
// manifest already in trace form. Positions: step i's query is the token at promptTokens - 1 + i
// (the prompt's last token is the first decode step's input; see src/eval/decode.ts).
import type { AttentionSettings } from './attention';
import { toRanges } from './blockRanges';
import { summarize } from './summary';
import { TRACE_FORMAT, TRACE_VERSION, type ManifestBlock, type SelectionTrace, type TraceModel, type TraceStep } from './types';

/** What the engine reports for one step (the addon's NativeAttentionStep, structurally). */
export interface StepSelections {
  layers: { blocks: ArrayLike<number>; source: TraceStep['layers'][number]['heads'][number]['source']; deltaHat: number | null; delta: number | null; expanded: number }[][];
}

export interface TraceInput {
  model: TraceModel;
  kvBlockSize: number;
  attention: AttentionSettings;
  promptTokens: number;
  manifest: ManifestBlock[];
  steps: StepSelections[];
  /** The token generated at each step and its text. */
  tokens: { id: number; text: string }[];
  createdAt?: Date;
}

export function buildTrace(input: TraceInput): SelectionTrace {
  if (input.tokens.length !== input.steps.length) throw new RangeError(`buildTrace: ${input.steps.length} steps but ${input.tokens.length} tokens`);
  const steps: TraceStep[] = input.steps.map((s, i) => {
    const position = input.promptTokens - 1 + i;
    return {
      step: i, position, tokenId: input.tokens[i].id, text: input.tokens[i].text,
      contextBlocks: Math.ceil((position + 1) / input.kvBlockSize),
      layers: s.layers.map((heads, layer) => ({
        layer,
        heads: heads.map((h, kvHead) => ({
          kvHead, blocks: toRanges(Array.from(h.blocks)), source: h.source,
          deltaHat: h.deltaHat, delta: h.delta, expanded: h.expanded,
        })),
      })),
    };
  });
  return {
    format: TRACE_FORMAT, version: TRACE_VERSION, createdAt: (input.createdAt ?? new Date()).toISOString(),
    model: input.model, kvBlockSize: input.kvBlockSize, attention: input.attention, promptTokens: input.promptTokens,
    manifest: input.manifest, steps, summary: summarize(steps, input.kvBlockSize),
  };
}

/** A manifest for a prompt that is not a repository (plain text): each block spans the prompt's lines it covers. */
export function textManifest(source: string, lineOfToken: readonly number[], kvBlockSize: number): ManifestBlock[] {
  const out: ManifestBlock[] = [];
  for (let start = 0; start < lineOfToken.length; start += kvBlockSize) {
    const end = Math.min(lineOfToken.length, start + kvBlockSize);
    const lines = lineOfToken.slice(start, end);
    out.push({
      block: start / kvBlockSize, tokenStart: start, tokenEnd: end,
      spans: [{ source, startLine: Math.min(...lines), endLine: Math.max(...lines), tokenStart: start, tokenEnd: end }],
    });
  }
  return out;
}
