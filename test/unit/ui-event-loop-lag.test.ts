// The extension's event-loop monitor attributes a blocked loop to the phase it happened in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventLoopLag } from '../../src/ui/eventLoopLag';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a loop blocked during one phase shows there, not in the phase before', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'lag-')), 'lag.json');
  const lag = new EventLoopLag(file);
  const phases = lag.phases('indexing');
  await sleep(100);
  phases.enter('generation');
  await sleep(30);
  lag.timed('a blocking callback', () => {
    const until = Date.now() + 120;
    while (Date.now() < until); // block the loop for 120 ms
  });
  await sleep(30);
  phases.end();
  lag.dispose();
  const report = JSON.parse(readFileSync(file, 'utf8'));
  assert.ok(report.phases.indexing.samples > 0 && report.phases.generation.samples > 0);
  assert.ok(report.phases.generation.maxMs >= 100, `the block shows in generation (${report.phases.generation.maxMs} ms)`);
  assert.ok(report.phases.indexing.maxMs < report.phases.generation.maxMs, 'and not in indexing');
  assert.ok(report.overall.maxMs >= report.phases.generation.maxMs);
  assert.ok(report.own.phases.generation.maxMs >= 100, `our own callback is timed whole (${report.own.phases.generation.maxMs} ms)`);
  assert.equal(report.own.phases.indexing.samples, 0);
  assert.equal(report.own.slowest.generation.label, 'a blocking callback');
  assert.ok(report.worstTick.generation.ms >= 100 && !Number.isNaN(Date.parse(report.worstTick.generation.at)));
  assert.ok(report.own.slowest.generation.ms >= 100);
});
