// Shared by the engine and CLI tests: bundles the engine process and the CLI the way
// scripts/bundle.mjs does (into dist/), and names the stories260K model folder.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

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
