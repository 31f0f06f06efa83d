// Bundles the extension host code, the CLI, the engine process and the webviews with esbuild.
// The native addon stays outside the bundles: it is loaded at run time from native/build.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
// WGSL shaders (webview/gpu/ops/*.wgsl) are imported as text.
const common = { bundle: true, sourcemap: true, logLevel: 'warning', target: 'es2022', loader: { '.wgsl': 'text' } };

const node = {
  ...common,
  platform: 'node',
  format: 'cjs',
  external: ['vscode'],
};

const builds = [
  { ...node, entryPoints: { extension: 'src/extension.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { cli: 'src/cli.ts' }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } },
  { ...node, entryPoints: { engine: 'src/engine/process.ts' }, outdir: 'dist' },
  // The extension's answer pipeline runs on a worker thread (reading and tokenizing the workspace).
  { ...node, entryPoints: { answerWorker: 'src/ui/answerWorker.ts' }, outdir: 'dist' },
];

// Webviews are browser bundles; each folder under webview/ with a main.ts becomes dist/webview/<name>.js.
for (const name of ['chat', 'selection', 'gpu']) {
  const entry = `webview/${name}/main.ts`;
  if (existsSync(entry)) {
    builds.push({ ...common, platform: 'browser', format: 'iife', entryPoints: { [name]: entry }, outdir: 'dist/webview' });
  }
}

const present = builds.filter((b) => Object.values(b.entryPoints).every((e) => existsSync(e)));
if (watch) {
  for (const b of present) (await esbuild.context(b)).watch();
} else {
  await Promise.all(present.map((b) => esbuild.build(b)));
}
