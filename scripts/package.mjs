// Builds the platform-specific VSIX (linux-x64: the prebuilt native addon is inside) with vsce.
// Expects `npm run build` to have run (npm run package does both). Prints what went in.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';

const TARGET = 'linux-x64';
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const out = `${pkg.name}-${pkg.version}-${TARGET}.vsix`;

const needed = ['dist/extension.js', 'dist/answerWorker.js', 'dist/engine.js', 'dist/webview/chat.js', 'dist/webview/selection.js', 'native/build/Release/repo_lens.node'];
const missing = needed.filter((f) => !existsSync(f));
if (missing.length) {
  console.error(`package: missing ${missing.join(', ')}; run "npm run build" first.`);
  process.exit(1);
}

// --no-dependencies: the esbuild bundles already contain every JavaScript dependency.
execFileSync(process.execPath, [
  'node_modules/@vscode/vsce/vsce', 'package',
  '--target', TARGET, '--no-dependencies', '--allow-missing-repository', '--skip-license', '--out', out,
], { stdio: ['ignore', 'inherit', 'inherit'] });

const listing = execFileSync('unzip', ['-l', out], { encoding: 'utf8' });
console.log(listing.split('\n').filter((l) => l.includes('extension/')).join('\n'));
console.log(`${out}: ${(statSync(out).size / 1024).toFixed(0)} KiB`);
