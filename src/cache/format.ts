// The file format of one disk-cache entry: a prompt prefix's token ids and their KV, as the
// engine's paged cache holds them (native/kv/kv_io.h gives the span layout). Version 1:
//
//   magic        8 bytes   "RLKV\r\n\x1a\n" (a text-mode copy or a truncated download breaks it)
//   version      u32 LE    FORMAT_VERSION
//   meta length  u32 LE
//   meta         JSON      EntryMeta (utf-8)
//   sha256       32 bytes  of everything above
//   ids          u32 LE × positions
//   sha256       32 bytes  of the ids
//   KV chunks    for each chunk of meta.chunkPositions positions (the last may be shorter):
//                  float32 LE [layers][2: keys, values][count][kvHeads][headDim], then its sha256
//   trailer      8 bytes   "RLKVEND\n"
//
// The header fixes the file's exact size, so a truncated file is refused before anything is read,
// and every section used is checked against its sha256 first. Writes are atomic: a temporary file
// in the same folder (named after the writing process, so a later process can tell it is
// abandoned), fsync, rename, fsync of the folder. A reader never sees a half-written entry under
// the final name.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname } from 'node:path';

export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from('RLKV\r\n\x1a\n', 'latin1');
const TRAILER = Buffer.from('RLKVEND\n', 'latin1');
const HASH_BYTES = 32;
const PREAMBLE_BYTES = MAGIC.length + 8;
const MAX_META_BYTES = 1 << 20;
/** Bytes of KV per chunk: big enough for fast I/O, small enough to keep memory flat. */
const CHUNK_BYTES = 8 << 20;
export const ENTRY_SUFFIX = '.rlkv';
export const TEMP_SUFFIX = '.tmp';

/** Everything that must equal for an entry's KV to be the KV a fresh prefill would compute. */
export type Fingerprint = Record<string, string | number>;

export interface EntryMeta {
  fingerprint: Fingerprint;
  positions: number;
  layers: number;
  kvHeads: number;
  headDim: number;
  chunkPositions: number;
  createdAt: string;
}

export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

/** An entry's file is damaged, of another version, or made for another model: it must be discarded. */
export class InvalidEntryError extends Error {}

export function floatsPerPosition(shape: KvShape): number {
  return shape.layers * 2 * shape.kvHeads * shape.headDim;
}

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

function bytesOf(a: Float32Array | Uint32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function chunkCount(meta: EntryMeta): number {
  return Math.ceil(meta.positions / meta.chunkPositions);
}

function expectedSize(meta: EntryMeta, metaBytes: number): number {
  const kvBytes = meta.positions * floatsPerPosition(meta) * 4;
  return PREAMBLE_BYTES + metaBytes + HASH_BYTES + meta.positions * 4 + HASH_BYTES + kvBytes + chunkCount(meta) * HASH_BYTES + TRAILER.length;
}

function checkEndianness(): void {
  // Entries are little-endian and read through typed arrays in the host's byte order.
  if (endianness() !== 'LE') throw new InvalidEntryError('the disk cache needs a little-endian machine');
}

/** The name a temporary file of `final` gets while this process writes it. */
export function tempName(final: string): string {
  return `${final}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`;
}

/** The id of the process that wrote a temporary file, from its name (null: not one of ours). */
export function tempWriter(name: string): number | null {
  const m = /\.rlkv\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name);
  return m ? Number(m[1]) : null;
}

export interface WriteEntryOptions {
  fingerprint: Fingerprint;
  shape: KvShape;
  ids: readonly number[];
  /** KV of positions [start, start + count) in the span layout (e.g. NativeModel.exportKv). */
  readSpan: (start: number, count: number) => Float32Array;
  /** Positions per KV chunk (default: about 8 MiB of KV). */
  chunkPositions?: number;
}

/** Writes an entry to `file` atomically; returns its size in bytes. On failure nothing is left behind. */
export function writeEntry(file: string, options: WriteEntryOptions): number {
  checkEndianness();
  const { shape, ids } = options;
  const perPosition = floatsPerPosition(shape);
  const meta: EntryMeta = {
    fingerprint: options.fingerprint,
    positions: ids.length,
    ...shape,
    chunkPositions: options.chunkPositions ?? Math.max(1, Math.floor(CHUNK_BYTES / (perPosition * 4))),
    createdAt: new Date().toISOString(),
  };
  const metaJson = Buffer.from(JSON.stringify(meta), 'utf8');
  const preamble = Buffer.alloc(PREAMBLE_BYTES);
  MAGIC.copy(preamble, 0);
  preamble.writeUInt32LE(FORMAT_VERSION, MAGIC.length);
  preamble.writeUInt32LE(metaJson.length, MAGIC.length + 4);
  const idBytes = bytesOf(Uint32Array.from(ids));

  const temp = tempName(file);
  const fd = openSync(temp, 'wx', 0o600);
  let size = 0;
  const write = (b: Uint8Array) => {
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done);
    size += b.length;
  };
  try {
    write(preamble);
    write(metaJson);
    write(sha256(preamble, metaJson));
    write(idBytes);
    write(sha256(idBytes));
    for (let start = 0; start < ids.length; start += meta.chunkPositions) {
      const count = Math.min(meta.chunkPositions, ids.length - start);
      const span = options.readSpan(start, count);
      if (span.length !== count * perPosition) throw new Error(`KV span of ${count} positions has ${span.length} floats, expected ${count * perPosition}`);
      const bytes = bytesOf(span);
      write(bytes);
      write(sha256(bytes));
    }
    write(TRAILER);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temp, file);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(temp, { force: true });
    throw e;
  }
  syncFolder(dirname(file));
  return size;
}

/** Makes a rename durable (best effort: not every file system lets a folder be fsynced). */
function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* the rename itself is still atomic */ }
}

/** An entry opened for reading: its header and ids are checked; KV chunks are checked as they are read. */
export class EntryReader {
  private constructor(
    readonly file: string,
    private readonly fd: number,
    readonly meta: EntryMeta,
    readonly ids: Uint32Array,
    private readonly kvStart: number,
  ) {}

  /**
   * Opens `file`; throws InvalidEntryError saying what is wrong when it is not a complete, intact
   * entry of this format version made with `fingerprint`.
   */
  static open(file: string, fingerprint: Fingerprint): EntryReader {
    checkEndianness();
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const read = (at: number, length: number): Buffer => {
        const b = Buffer.alloc(length);
        const n = readSync(fd, b, 0, length, at);
        if (n !== length) throw new InvalidEntryError(`truncated: ${size} bytes, ended inside a section at byte ${at + n}`);
        return b;
      };
      const preamble = read(0, Math.min(PREAMBLE_BYTES, size));
      if (preamble.length < PREAMBLE_BYTES || !preamble.subarray(0, MAGIC.length).equals(MAGIC)) throw new InvalidEntryError('not a Repo Lens KV cache file (bad magic)');
      const version = preamble.readUInt32LE(MAGIC.length);
      if (version !== FORMAT_VERSION) throw new InvalidEntryError(`format version ${version}, this engine reads version ${FORMAT_VERSION}`);
      const metaBytes = preamble.readUInt32LE(MAGIC.length + 4);
      if (metaBytes > MAX_META_BYTES || PREAMBLE_BYTES + metaBytes + HASH_BYTES > size) throw new InvalidEntryError(`truncated or damaged header (${size} bytes, header of ${metaBytes} declared)`);
      const metaJson = read(PREAMBLE_BYTES, metaBytes);
      if (!read(PREAMBLE_BYTES + metaBytes, HASH_BYTES).equals(sha256(preamble, metaJson))) throw new InvalidEntryError('header checksum mismatch');
      const meta = parseMeta(metaJson);
      if (JSON.stringify(meta.fingerprint) !== JSON.stringify(fingerprint)) throw new InvalidEntryError('made for another model, tokenizer, engine build or context settings');
      const want = expectedSize(meta, metaBytes);
      if (size !== want) throw new InvalidEntryError(`${size < want ? 'truncated' : 'has trailing bytes'}: ${size} bytes, its header declares ${want}`);
      if (!read(size - TRAILER.length, TRAILER.length).equals(TRAILER)) throw new InvalidEntryError('the end-of-file marker is missing');
      const idsAt = PREAMBLE_BYTES + metaBytes + HASH_BYTES;
      const idBytes = read(idsAt, meta.positions * 4);
      if (!read(idsAt + idBytes.length, HASH_BYTES).equals(sha256(idBytes))) throw new InvalidEntryError('checksum mismatch in the token ids');
      const ids = new Uint32Array(idBytes.buffer, idBytes.byteOffset, meta.positions).slice();
      return new EntryReader(file, fd, meta, ids, idsAt + idBytes.length + HASH_BYTES);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** KV chunk `index` (positions index * chunkPositions ..), checked against its checksum. */
  readChunk(index: number): Float32Array {
    const { meta } = this;
    const chunks = chunkCount(meta);
    if (index < 0 || index >= chunks) throw new RangeError(`chunk ${index} of ${chunks}`);
    const chunkBytes = meta.chunkPositions * floatsPerPosition(meta) * 4;
    const count = Math.min(meta.chunkPositions, meta.positions - index * meta.chunkPositions);
    const span = new Float32Array(count * floatsPerPosition(meta));
    const bytes = bytesOf(span);
    const at = this.kvStart + index * (chunkBytes + HASH_BYTES);
    const hash = Buffer.alloc(HASH_BYTES);
    if (readSync(this.fd, bytes, 0, bytes.length, at) !== bytes.length || readSync(this.fd, hash, 0, HASH_BYTES, at + bytes.length) !== HASH_BYTES) {
      throw new InvalidEntryError(`truncated in KV chunk ${index}`);
    }
    if (!hash.equals(sha256(bytes))) throw new InvalidEntryError(`checksum mismatch in KV chunk ${index} of ${chunks}`);
    return span;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function parseMeta(json: Buffer): EntryMeta {
  let m: EntryMeta;
  try {
    m = JSON.parse(json.toString('utf8')) as EntryMeta;
  } catch {
    throw new InvalidEntryError('the header is not valid JSON');
  }
  const positive = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (typeof m !== 'object' || m === null || typeof m.fingerprint !== 'object' || !Number.isInteger(m.positions) || m.positions < 0 ||
      ![m.layers, m.kvHeads, m.headDim, m.chunkPositions].every(positive)) {
    throw new InvalidEntryError('the header lacks its shape fields');
  }
  return m;
}
