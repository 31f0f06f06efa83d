// The disk-cache entry format (src/cache/format.ts): round trip, and every kind of damage —
// truncation, flipped bytes in each section, another format version, another model, a process
// killed while writing — is refused with a message saying what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryReader, InvalidEntryError, writeEntry, type Fingerprint } from '../../src/cache/format';
import { sweepAbandoned } from '../../src/cache/store';
import { FINGERPRINT, SHAPE, syntheticSpan } from './cache-helpers';

const IDS = Array.from({ length: 21 }, (_, i) => 1000 + i * 7);

function freshDir(): string {
  return mkdtempSync(join(tmpdir(), 'rl-cache-'));
}

function write(file: string, ids = IDS): number {
  return writeEntry(file, { fingerprint: FINGERPRINT, shape: SHAPE, ids, chunkPositions: 8, readSpan: syntheticSpan });
}

function invalid(file: string, pattern: RegExp, fingerprint: Fingerprint = FINGERPRINT): void {
  assert.throws(() => EntryReader.open(file, fingerprint).close(), (e: unknown) => e instanceof InvalidEntryError && pattern.test(e.message), `expected ${pattern}`);
}

/** Flips one byte at `at` (negative: from the end). */
function flip(file: string, at: number): void {
  const b = readFileSync(file);
  const i = at < 0 ? b.length + at : at;
  b[i] ^= 0x40;
  writeFileSync(file, b);
}

test('round trip: ids and KV chunks come back bit for bit; no temporary file is left', () => {
  const dir = freshDir();
  const file = join(dir, 'a.rlkv');
  const size = write(file);
  assert.equal(statSync(file).size, size);
  assert.deepEqual(readdirSync(dir), ['a.rlkv']);
  const r = EntryReader.open(file, FINGERPRINT);
  assert.deepEqual(Array.from(r.ids), IDS);
  assert.equal(r.meta.positions, IDS.length);
  assert.equal(r.meta.chunkPositions, 8);
  for (const [chunk, start, count] of [[0, 0, 8], [1, 8, 8], [2, 16, 5]]) {
    assert.deepEqual(r.readChunk(chunk), syntheticSpan(start, count), `chunk ${chunk}`);
  }
  r.close();
});

test('truncated anywhere, or with bytes appended: refused before any KV is read', () => {
  const dir = freshDir();
  const file = join(dir, 'a.rlkv');
  const size = write(file);
  for (const length of [0, 5, 20, 100, size - 300, size - 1]) {
    write(file);
    truncateSync(file, length);
    invalid(file, length < 16 ? /bad magic/ : /truncated/);
  }
  write(file);
  writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from([0])]));
  invalid(file, /trailing bytes/);
});

test('a flipped byte in the header, the ids or a KV chunk is caught by that section\'s checksum', () => {
  const dir = freshDir();
  const file = join(dir, 'a.rlkv');
  write(file);
  flip(file, 30); // inside the JSON header
  invalid(file, /header checksum mismatch/);

  write(file);
  // Back from the end: trailer, 3 chunk hashes, 21 positions of 32 floats, the ids' hash, 21 ids.
  const idsAt = statSync(file).size - 8 - 3 * 32 - 21 * 32 * 4 - 32 - 21 * 4;
  flip(file, idsAt + 3);
  invalid(file, /checksum mismatch in the token ids/);

  write(file);
  flip(file, -8 - 32 - 10); // the last KV chunk's data
  const r = EntryReader.open(file, FINGERPRINT);
  assert.deepEqual(r.readChunk(0), syntheticSpan(0, 8), 'an intact chunk still reads');
  assert.throws(() => r.readChunk(2), /checksum mismatch in KV chunk 2 of 3/);
  r.close();

  write(file);
  flip(file, -2); // the end-of-file marker
  invalid(file, /end-of-file marker/);
});

test('another format version, another fingerprint, or not a cache file at all', () => {
  const dir = freshDir();
  const file = join(dir, 'a.rlkv');
  write(file);
  const b = readFileSync(file);
  b.writeUInt32LE(2, 8);
  writeFileSync(file, b);
  invalid(file, /format version 2, this engine reads version 1/);

  write(file);
  invalid(file, /made for another model/, { ...FINGERPRINT, model: 'other' });

  writeFileSync(file, 'just some text that happens to end in .rlkv\n');
  invalid(file, /not a Repo Lens KV cache file/);
});

test('a failing KV source leaves neither the entry nor a temporary file', () => {
  const dir = freshDir();
  const file = join(dir, 'a.rlkv');
  assert.throws(() => writeEntry(file, {
    fingerprint: FINGERPRINT, shape: SHAPE, ids: IDS, chunkPositions: 8,
    readSpan: (start, count) => { if (start > 0) throw new Error('model went away'); return syntheticSpan(start, count); },
  }), /model went away/);
  assert.deepEqual(readdirSync(dir), []);
});

test('a process killed while writing leaves no entry, only a temporary file that never loads; the next sweep removes it and says so', async () => {
  const dir = freshDir();
  const file = join(dir, 'a.rlkv');
  write(file, [1, 2, 3]); // an older intact entry under the final name
  const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'unit', 'cache-child.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('one chunk written')) resolve(); });
    child.on('exit', (code) => reject(new Error(`the writer exited (${code}) before it was killed`)));
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;

  const temps = readdirSync(dir).filter((n) => n.endsWith('.tmp'));
  assert.equal(temps.length, 1, `files: ${readdirSync(dir)}`);
  assert.match(temps[0], new RegExp(`^a\\.rlkv\\.${child.pid}\\.[0-9a-f]{8}\\.tmp$`));
  assert.ok(statSync(join(dir, temps[0])).size > 0, 'the writer had written part of the entry');
  // The final name still holds the older entry, intact; the partial file does not load, even if renamed.
  assert.deepEqual(Array.from(EntryReader.open(file, FINGERPRINT).ids), [1, 2, 3]);
  invalid(join(dir, temps[0]), /truncated/);

  const notes = sweepAbandoned(dir);
  assert.equal(notes.length, 1);
  assert.match(notes[0], new RegExp(`removed ${temps[0].replace(/\./g, '\\.')}: an incomplete cache file left by process ${child.pid}, which ended while writing it`));
  assert.ok(!existsSync(join(dir, temps[0])));
  assert.ok(existsSync(file));
});
