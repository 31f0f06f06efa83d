// Typed view of the `repoLens.*` settings. Read fresh on every use so edits apply without a reload.
import * as vscode from 'vscode';
import { PREFILL_PRECISIONS, type Backend, type PrefillPrecision } from '../engine/protocol';
import { parseAttentionSettings, type AttentionSettings } from '../trace/attention';

export interface Settings {
  /** Absolute model folder, or '' for the embedded default. */
  modelPath: string;
  backend: Backend;
  /** The CUDA backend's prefill precision (repoLens.cuda.prefillPrecision); other backends ignore it. */
  prefillPrecision: PrefillPrecision;
  contextTokens: number;
  maxNewTokens: number;
  kvBlockSize: number;
  /** Decode attention (PrHS or a baseline), validated with the trace module's defaults. */
  attention: AttentionSettings;
  /** How the repository's KV is built: one exact prefix, or per-file segments (experimental). */
  kvAssembly: 'prefix' | 'segments';
  segmentRecompute: number;
}

const BACKENDS: readonly Backend[] = ['auto', 'cuda', 'cpu', 'webgpu'];
/** Settings under repoLens.prhs.* that map one-to-one onto AttentionSettings fields. */
const ATTENTION_KEYS = ['mode', 'budget', 'budgetTokens', 'tau', 'maxReuse', 'dilation', 'deltaTarget', 'sinks', 'window', 'layerGroup'] as const;

export class SettingsError extends Error {}

/** Throws SettingsError naming the setting when a value is out of range. */
export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration('repoLens');
  const backend = c.get<string>('backend', 'auto');
  if (!(BACKENDS as readonly string[]).includes(backend)) throw new SettingsError(`repoLens.backend must be one of ${BACKENDS.join(', ')} (is ${JSON.stringify(backend)}).`);
  const prefillPrecision = c.get<string>('cuda.prefillPrecision', 'float32');
  if (!(PREFILL_PRECISIONS as readonly string[]).includes(prefillPrecision)) {
    throw new SettingsError(`repoLens.cuda.prefillPrecision must be one of ${PREFILL_PRECISIONS.join(', ')} (is ${JSON.stringify(prefillPrecision)}).`);
  }
  const kvAssembly = c.get<string>('kvAssembly', 'prefix');
  if (kvAssembly !== 'prefix' && kvAssembly !== 'segments') throw new SettingsError(`repoLens.kvAssembly must be prefix or segments (is ${JSON.stringify(kvAssembly)}).`);
  const segmentRecompute = c.get<number>('segmentRecompute', 0.25);
  if (!(segmentRecompute >= 0 && segmentRecompute <= 1)) throw new SettingsError(`repoLens.segmentRecompute must be between 0 and 1 (is ${segmentRecompute}).`);
  const given: Record<string, unknown> = {};
  for (const k of ATTENTION_KEYS) {
    const v = c.get<unknown>(`prhs.${k}`);
    if (v !== undefined) given[k] = v;
  }
  let attention: AttentionSettings;
  try {
    attention = parseAttentionSettings(given);
  } catch (e) {
    throw new SettingsError(`Invalid setting: ${(e as Error).message.replace(/^attention\./, 'repoLens.prhs.')}.`);
  }
  return {
    modelPath: c.get<string>('modelPath', '').trim(),
    backend: backend as Backend,
    prefillPrecision: prefillPrecision as PrefillPrecision,
    contextTokens: Math.max(0, Math.floor(c.get<number>('contextTokens', 0))),
    maxNewTokens: Math.max(1, Math.floor(c.get<number>('maxNewTokens', 256))),
    kvBlockSize: Math.max(4, Math.floor(c.get<number>('kvBlockSize', 32))),
    attention,
    kvAssembly,
    segmentRecompute,
  };
}

/** Opens the Settings editor filtered to our settings (the action offered on configuration errors). */
export function openSettings(query = '@ext:repo-lens.repo-lens'): Thenable<unknown> {
  return vscode.commands.executeCommand('workbench.action.openSettings', query);
}
