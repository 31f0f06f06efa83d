// readSettings (src/ui/config.ts) against a stand-in for the `vscode` module: the values of the
// settings as given, the defaults when unset, and a SettingsError naming the setting otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Module from 'node:module';

let values: Record<string, unknown> = {};
const fakeVscode = {
  workspace: {
    getConfiguration: (section: string) => {
      assert.equal(section, 'repoLens');
      return { get: <T>(key: string, fallback?: T): T | undefined => (key in values ? (values[key] as T) : fallback) };
    },
  },
  commands: { executeCommand: () => Promise.resolve() },
};
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = loader._load;
loader._load = (request, ...rest) => (request === 'vscode' ? fakeVscode : load(request, ...rest));
const { readSettings, SettingsError } = require('../../src/ui/config') as typeof import('../../src/ui/config');

test('repoLens.cuda.prefillPrecision: float32 by default, half when set, anything else a SettingsError naming the values', () => {
  values = {};
  assert.equal(readSettings().prefillPrecision, 'float32');
  values = { 'cuda.prefillPrecision': 'half' };
  assert.equal(readSettings().prefillPrecision, 'half');
  values = { 'cuda.prefillPrecision': 'float32', backend: 'cuda' };
  assert.deepEqual([readSettings().backend, readSettings().prefillPrecision], ['cuda', 'float32']);
  values = { 'cuda.prefillPrecision': 'bf16' };
  assert.throws(() => readSettings(), (e: unknown) => e instanceof SettingsError && /repoLens\.cuda\.prefillPrecision must be one of float32, half \(is "bf16"\)/.test(e.message));
});

test('repoLens.backend: an unknown value is a SettingsError naming the values', () => {
  values = { backend: 'tpu' };
  assert.throws(() => readSettings(), (e: unknown) => e instanceof SettingsError && /repoLens\.backend must be one of auto, cuda, cpu, webgpu/.test(e.message));
});
