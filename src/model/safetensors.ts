// Reads and checks a safetensors header: 8 bytes little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then the data,
// whose offsets count from the end of the header. Every tensor's byte range is checked against
// the file's size, its dtype and shape, and the other tensors, so the engines can map the file
// and read it without further checks. Pure (no Node APIs): the WebGPU engine imports it too.

import { ModelError } from './errors';
import type { WeightDtype } from './native';

/** One tensor of the file, its byte range absolute (from the start of the file). */
export interface SafetensorsTensor {
  name: string;
  dtype: WeightDtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Bytes before the data: the 8-byte length plus the JSON header. */
  dataStart: number;
  tensors: SafetensorsTensor[];
}

export const DTYPE_BYTES: Record<WeightDtype, number> = { F32: 4, F16: 2, BF16: 2 };

// Other dtypes the format defines: named so the error can say "not supported" rather than "unknown".
const OTHER_DTYPES = ['F64', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64'];

// The safetensors format itself refuses headers above 100 MB.
const MAX_HEADER_BYTES = 100_000_000;

/**
 * The header's total size (8 + N) from the file's first 8 bytes; the caller then reads that many
 * bytes and passes them to parseSafetensorsHeader.
 */
export function safetensorsHeaderSize(first8: Uint8Array, fileSize: number, fileName: string): number {
  if (fileSize < 8 || first8.length < 8) {
    throw new ModelError(fileName, `truncated safetensors file: ${fileSize} bytes, too short to hold the 8-byte header length`);
  }
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelError(fileName, `safetensors header length ${n} is larger than the format's 100 MB limit (corrupt or not a safetensors file)`);
  }
  if (8n + n > BigInt(fileSize)) {
    throw new ModelError(fileName, `truncated safetensors file: header length ${n} runs past the end of the file (${fileSize} bytes)`);
  }
  return 8 + Number(n);
}

/**
 * Parses and validates the header. `bytes` holds at least the file's first 8 + N bytes (the whole
 * file is fine); `fileSize` is the size of the whole file.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, fileName: string): SafetensorsHeader {
  const fail = (problem: string): never => {
    throw new ModelError(fileName, problem);
  };
  const dataStart = safetensorsHeaderSize(bytes, fileSize, fileName);
  if (bytes.length < dataStart) fail(`only ${bytes.length} of the header's ${dataStart} bytes were given`);

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (e) {
    return fail(`safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('safetensors header is not a JSON object');

  const dataSize = fileSize - dataStart;
  const tensors: SafetensorsTensor[] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    tensors.push(parseEntry(name, entry, dataStart, dataSize, fileSize, fail));
  }

  // Ranges must not overlap (zero-size tensors take no bytes and cannot overlap anything).
  const sorted = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) {
      fail(`tensors "${sorted[i - 1].name}" and "${sorted[i].name}" overlap (bytes ${sorted[i].begin}..${sorted[i - 1].end})`);
    }
  }
  return { dataStart, tensors };
}

function parseEntry(
  name: string,
  entry: unknown,
  dataStart: number,
  dataSize: number,
  fileSize: number,
  fail: (p: string) => never,
): SafetensorsTensor {
  if (typeof entry !== 'object' || entry === null) return fail(`tensor "${name}": entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string') return fail(`tensor "${name}": missing dtype`);
  if (!(dtype in DTYPE_BYTES)) {
    const known = OTHER_DTYPES.includes(dtype) ? 'is not supported' : 'is unknown';
    return fail(`tensor "${name}": dtype "${dtype}" ${known} (supported: F32, F16, BF16)`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    return fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
    return fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not a [begin, end] pair with 0 <= begin <= end`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataSize) {
    return fail(`tensor "${name}": data_offsets [${begin}, ${end}] lie outside the file (data holds ${dataSize} bytes, file ${fileSize}; truncated?)`);
  }
  const wdtype = dtype as WeightDtype;
  const elements = (shape as number[]).reduce((a, d) => a * d, 1);
  const expected = elements * DTYPE_BYTES[wdtype];
  if (end - begin !== expected) {
    return fail(`tensor "${name}": ${end - begin} bytes of data, but ${wdtype} with shape [${shape.join(', ')}] needs ${expected}`);
  }
  return { name, dtype: wdtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end };
}
