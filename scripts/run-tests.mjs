// Runs every test file with Node's own test runner, in a fixed order of suites:
// unit (TypeScript only), native (the addon), webview (headless Chromium), e2e (code-server).
// Usage: node scripts/run-tests.mjs [suite ...]   (default: all suites)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'native', 'webview', 'e2e'];

function testFiles(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir).sort(); } catch { return out; }
  for (const name of entries) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(testFiles(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = suites.flatMap((s) => testFiles(join('test', s)));
if (files.length === 0) {
  console.error('no test files found for suites: ' + suites.join(', '));
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
