// The selection trace of one `ask` answer (`repo-lens ask --trace FILE`), and the attention
// options the CLI offers for it. With sparse attention the engine's per-step selections are used;
// with dense attention the trace says so (every block, δ̂ = 0).
import type { OptionSpec, Parsed } from '../cli';
import type { ModelArch } from '../model/native';
import type { AskResult } from '../qa';
import { denseTrace, traceManifest } from '../ui/denseTrace';
import { ATTENTION_MODES, AttentionSettingsError, parseAttentionSettings, type AttentionSettings } from './attention';
import { buildTrace } from './build';
import type { SelectionTrace } from './types';

export const ATTENTION_CLI_OPTIONS: OptionSpec[] = [
  { name: 'attention', value: 'MODE', help: `decode attention: ${ATTENTION_MODES.join(', ')} (default dense; docs/prhs.md)` },
  { name: 'budget', value: 'F', help: 'sparse attention budget as a fraction of the context (default 0.25)' },
  { name: 'attention-settings', value: 'JSON', help: 'further attention settings, e.g. {"tau":0.5,"deltaTarget":0.02}' },
  { name: 'trace', value: 'FILE', help: 'write the selection trace (docs/trace.md) to FILE' },
];

/** The attention settings the options ask for, or undefined for dense. Throws AttentionSettingsError. */
export function attentionFromOptions(p: Parsed): AttentionSettings | undefined {
  const mode = p.options.get('attention');
  const budget = p.options.get('budget');
  const json = p.options.get('attention-settings');
  if (mode === undefined && budget === undefined && json === undefined) return undefined;
  let extra: unknown = {};
  if (typeof json === 'string') {
    try {
      extra = JSON.parse(json);
    } catch (e) {
      throw new AttentionSettingsError(`--attention-settings is not JSON (${(e as Error).message})`);
    }
  }
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) return parseAttentionSettings(extra);
  return parseAttentionSettings({
    ...extra,
    ...(typeof mode === 'string' ? { mode } : {}),
    ...(typeof budget === 'string' ? { budget: Number(budget) } : {}),
  });
}

export interface AskTraceInput {
  result: AskResult;
  modelName: string;
  arch: Pick<ModelArch, 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim'>;
  kvBlockSize: number;
  tokenText: (id: number) => string;
}

export function askTrace(x: AskTraceInput): SelectionTrace {
  const tokens = x.result.ids.map((id) => ({ id, text: x.tokenText(id) }));
  const arch = { numLayers: x.arch.numLayers, numHeads: x.arch.numHeads, numKvHeads: x.arch.numKvHeads, headDim: x.arch.headDim };
  const promptTokens = x.result.tokens.prompt;
  const report = x.result.attention;
  if (!report?.steps) {
    return denseTrace({ modelName: x.modelName, arch, manifest: x.result.context.manifest, promptTokens, tokens }, x.kvBlockSize);
  }
  return buildTrace({
    model: { name: x.modelName, ...arch }, kvBlockSize: x.kvBlockSize, attention: report.settings, promptTokens,
    manifest: traceManifest(x.result.context.manifest, promptTokens),
    steps: report.steps.map((layers) => ({ layers })), tokens,
  });
}
