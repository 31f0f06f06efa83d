// RevivalQueue (src/ui/revival.ts): after a reload the panels are revived one at a time, each once
// the one before has loaded its page, so that their webviews never load at the same moment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RevivalQueue } from '../../src/ui/revival';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stand-in for a vscode.WebviewPanel: only onDidDispose. */
function panel() {
  const listeners = new Set<() => void>();
  return {
    onDidDispose: (l: () => void) => { listeners.add(l); return { dispose: () => listeners.delete(l) }; },
    close: () => { for (const l of [...listeners]) l(); },
  };
}

/** A page that reports loaded when `load()` is called. */
function page() {
  let load!: () => void;
  const loaded = new Promise<void>((r) => (load = r));
  return { loaded, load };
}

test('the second panel is revived only once the first has loaded its page; each deserializer resolves once its own panel is set up', async () => {
  const q = new RevivalQueue(10_000);
  const order: string[] = [];
  const chat = page();
  const first = q.revive(panel(), () => { order.push('chat revived'); return chat.loaded; });
  const second = q.revive(panel(), () => { order.push('selection revived'); return Promise.resolve(); });
  await first; // resolves without waiting for the chat page to load: VS Code then creates its webview
  await sleep(50);
  assert.deepEqual(order, ['chat revived']);
  chat.load();
  await second;
  assert.deepEqual(order, ['chat revived', 'selection revived']);
});

test('a page that never loads holds the next panel up for maxWaitMs only', async () => {
  const q = new RevivalQueue(200);
  const t0 = Date.now();
  await q.revive(panel(), () => new Promise<void>(() => {}));
  let revivedAt = 0;
  await q.revive(panel(), () => { revivedAt = Date.now(); return Promise.resolve(); });
  assert.ok(revivedAt - t0 >= 190 && revivedAt - t0 < 2000, `revived after ${revivedAt - t0} ms`);
});

test('a panel closed while it waits is not revived, and does not hold up the ones after it', async () => {
  const q = new RevivalQueue(10_000);
  const chat = page();
  const revived: string[] = [];
  await q.revive(panel(), () => { revived.push('chat'); return chat.loaded; });
  const closed = panel();
  const second = q.revive(closed, () => { revived.push('closed one'); return Promise.resolve(); });
  const third = q.revive(panel(), () => { revived.push('selection'); return Promise.resolve(); });
  closed.close();
  chat.load();
  await second;
  await third;
  assert.deepEqual(revived, ['chat', 'selection']);
});

test('a revive that throws fails its own deserializer only', async () => {
  const q = new RevivalQueue(10_000);
  await assert.rejects(q.revive(panel(), () => { throw new Error('bad state'); }), /bad state/);
  let ran = false;
  await q.revive(panel(), () => { ran = true; return Promise.resolve(); });
  assert.ok(ran);
});
