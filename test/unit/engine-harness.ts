// Shared by the engine and CLI tests: bundles the engine process and the CLI the way
// scripts/bundle.mjs does (into dist/), and names the stories260K model folder.
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EngineClient } from '../../src/engine/client';

export const STORIES = resolve('../shared/models/stories260K/hf');
export const ENGINE = resolve('dist/engine.js');
export const CLI = resolve('dist/cli.js');
/** The addon the engine will load: $REPO_LENS_ADDON when set (as the engine does), else the build output. */
export const ADDON = process.env.REPO_LENS_ADDON ?? resolve('native/build/Release/repo_lens.node');

let built: Promise<void> | null = null;

/** Bundles dist/engine.js and dist/cli.js once per test process; fails when the addon was never built. */
export function buildBundles(): Promise<void> {
  if (!existsSync(ADDON)) throw new Error(`${ADDON} is missing: run "npm run build:native" first`);
  built ??= (async () => {
    const node: esbuild.BuildOptions = { bundle: true, sourcemap: true, logLevel: 'warning', target: 'es2022', platform: 'node', format: 'cjs', external: ['vscode'], outdir: 'dist' };
    await Promise.all([
      esbuild.build({ ...node, entryPoints: { engine: 'src/engine/process.ts' } }),
      existsSync('src/cli.ts') ? esbuild.build({ ...node, entryPoints: { cli: 'src/cli.ts' }, banner: { js: '#!/usr/bin/env node' } }) : Promise.resolve(),
    ]);
  })();
  return built;
}

/** Engine processes on stories260K that load a private copy of the addon, in a fresh temporary folder. */
export interface PrivateEngines {
  /** The temporary folder (repositories and caches of the test go here). */
  work: string;
  /** A new loaded engine; ended by dispose(). */
  engine(): Promise<EngineClient>;
  dispose(): Promise<void>;
}

/** The private addon copy matters where the disk cache is used: it is keyed by the engine build, which a rebuild meanwhile would change. */
export async function privateEngines(prefix: string): Promise<PrivateEngines> {
  await buildBundles();
  const work = mkdtempSync(join(tmpdir(), prefix));
  copyFileSync(ADDON, join(work, 'repo_lens.node'));
  const env = { ...process.env, REPO_LENS_ADDON: join(work, 'repo_lens.node') };
  const clients: EngineClient[] = [];
  return {
    work,
    async engine() {
      const c = new EngineClient({ enginePath: ENGINE, env });
      clients.push(c);
      await c.load({ modelDir: STORIES });
      return c;
    },
    async dispose() {
      await Promise.all(clients.map((c) => c.dispose()));
    },
  };
}
