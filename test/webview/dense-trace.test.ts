// The dense selection trace the extension shows while the engine returns none: built from a real
// context manifest (the e2e fixture workspace, stories260K's tokenizer), it must validate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildContext } from '../../src/context';
import { parseConfig } from '../../src/model/config';
import { contextTokenizer, tokenizerFor } from '../../src/qa';
import { validateTrace } from '../../src/trace/validate';
import { denseTrace, traceManifest } from '../../src/ui/denseTrace';
import { fileRows } from '../../webview/selection/model';

const MODEL = resolve('..', 'shared', 'models', 'stories260K', 'hf');

test('a dense trace over a real manifest validates and names every file', { skip: !existsSync(MODEL) && `${MODEL} is missing` }, async () => {
  const head = 45; // template tokens before the repository, not a multiple of the block size
  const ctx = await buildContext({ root: 'test/e2e/workspace', tokenizer: contextTokenizer(tokenizerFor(MODEL)), budgetTokens: 400, blockSize: 32, offset: head });
  const promptTokens = head + ctx.ids.length + 20;
  const trace = denseTrace({
    // The whole config (as the extension passes it): only the trace's model fields may go in.
    modelName: 'stories260K', arch: parseConfig(JSON.parse(readFileSync(resolve(MODEL, 'config.json'), 'utf8')), 'config.json'),
    manifest: ctx.manifest, promptTokens, tokens: [{ id: 5, text: 'a' }, { id: 6, text: 'b' }, { id: 7, text: 'c' }],
  }, 32);
  assert.deepEqual(validateTrace(JSON.parse(JSON.stringify(trace))), []);
  assert.deepEqual(fileRows(trace).map((r) => r.file), ['README.md', 'lib/strings.js', 'src/app.ts', 'src/util/math.ts']);
  assert.equal(trace.summary.effectiveBudget, 1, 'dense reads everything');
  const m = traceManifest(ctx.manifest, promptTokens);
  assert.equal(m[0].spans[0].source, '<instructions>');
  assert.equal(m[m.length - 1].spans[m[m.length - 1].spans.length - 1].source, '<question>');
});
