/// <reference types="@webgpu/types" />
// Streams a model folder's safetensors weights into GPU buffers, one tensor at a time, as they
// arrive: f32 bytes and 16-bit matrices (kept packed: the matmul and embedding ops widen as they
// read) are written straight into their buffer; 16-bit vectors (norms, biases) go to a staging
// buffer that a compute pass widens to f32. Only the tensors the architecture needs are uploaded,
// each checked against the shape config.json implies and against the adapter's buffer limits
// (before any byte is read where the size is sure), so a model too large fails with the limit's name.

import { ModelError } from '../../src/model/errors';
import type { ModelArch } from '../../src/model/native';
import { parseSafetensorsHeader, safetensorsHeaderSize, type SafetensorsTensor } from '../../src/model/safetensors';
import { expectedTensors } from '../../src/model/tensors';
import { GpuUnavailableError } from './device';
import { ChunkReader, type ModelFiles } from './files';
import type { Kernels } from './kernel';
import { encodeWiden } from './ops/convert';
import type { GpuTensor } from './tensor';

const MiB = 1024 * 1024;
// Let the GPU catch up with queued writes after this many bytes, so staging memory stays bounded.
const FLUSH_BYTES = 64 * MiB;

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** Fails unless a buffer of `bytes` fits this device's limits; `what` names the buffer. */
export function checkBufferLimits(device: GPUDevice, bytes: number, what: string): void {
  for (const limit of ['maxStorageBufferBindingSize', 'maxBufferSize'] as const) {
    if (bytes > device.limits[limit]) {
      throw new GpuUnavailableError(`${what} needs ${mib(bytes)}, above this GPU's ${limit} (${mib(device.limits[limit])})`);
    }
  }
}

/** A GPU buffer, with out-of-memory reported as GpuUnavailableError naming `what`. */
export async function allocate(device: GPUDevice, size: number, usage: number, what: string): Promise<GPUBuffer> {
  checkBufferLimits(device, size, what);
  device.pushErrorScope('out-of-memory');
  const buffer = device.createBuffer({ size: Math.max(4, Math.ceil(size / 4) * 4), usage, label: what });
  const error = await device.popErrorScope();
  if (error) {
    buffer.destroy();
    throw new GpuUnavailableError(`the GPU ran out of memory allocating ${what} (${mib(size)}): ${error.message}`);
  }
  return buffer;
}

export interface WeightProgress {
  (doneElements: number, totalElements: number): void;
}

/** Every tensor the forward pass reads, by name: matrices as stored (f32 or packed 16-bit), vectors as f32. */
export async function loadWeights(k: Kernels, arch: ModelArch, files: ModelFiles, progress: WeightProgress): Promise<Map<string, GpuTensor>> {
  const expected = new Map(expectedTensors(arch).map((t) => [t.name, t.shape]));
  const elementsOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  // The least a tensor can take (16-bit matrices, f32 vectors): what cannot fit even so fails now.
  for (const [name, shape] of expected) checkBufferLimits(k.device, elementsOf(shape) * (shape.length > 1 ? 2 : 4), `tensor "${name}"`);
  const totalElements = [...expected.values()].reduce((a, s) => a + elementsOf(s), 0);

  const { shards, weightsName } = await listShards(files);
  const buffers = new Map<string, GpuTensor>();
  let doneElements = 0;
  try {
    for (const [shard, names] of shards) {
      await loadShard(k, files, shard, (name) => (names === null || names.has(name)) && expected.has(name), {
        expectShape: (name) => expected.get(name)!,
        onTensor: (name, tensor, elements) => {
          buffers.set(name, tensor);
          doneElements += elements;
          progress(doneElements, totalElements);
        },
      });
    }
    for (const name of expected.keys()) {
      if (!buffers.has(name)) throw new ModelError(weightsName, `tensor "${name}" is missing (config.json's architecture needs it)`);
    }
  } catch (e) {
    for (const t of buffers.values()) t.buffer.destroy();
    throw e;
  }
  return buffers;
}

/** The weight files and, for sharded folders, which tensors each holds (null: all of them). */
async function listShards(files: ModelFiles): Promise<{ shards: Map<string, Set<string> | null>; weightsName: string }> {
  const indexName = 'model.safetensors.index.json';
  const indexText = await files.readText(indexName);
  if (indexText === null) return { shards: new Map([['model.safetensors', null]]), weightsName: files.describe('model.safetensors') };

  const where = files.describe(indexName);
  let json: unknown;
  try {
    json = JSON.parse(indexText);
  } catch (e) {
    throw new ModelError(where, `not valid JSON (${(e as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null) throw new ModelError(where, 'missing "weight_map"');
  const shards = new Map<string, Set<string>>();
  for (const [name, shard] of Object.entries(weightMap)) {
    // Shards must be plain file names in the folder: no paths that lead elsewhere.
    if (typeof shard !== 'string' || !/^[\w.-]+\.safetensors$/.test(shard)) {
      throw new ModelError(where, `weight_map entry for "${name}" is not a .safetensors file name in the folder: ${JSON.stringify(shard)}`);
    }
    if (!shards.has(shard)) shards.set(shard, new Set());
    shards.get(shard)!.add(name);
  }
  return { shards, weightsName: where };
}

interface ShardSink {
  expectShape(name: string): number[];
  onTensor(name: string, tensor: GpuTensor, elements: number): void;
}

async function loadShard(k: Kernels, files: ModelFiles, shard: string, wanted: (name: string) => boolean, sink: ShardSink): Promise<void> {
  const where = files.describe(shard);
  const file = await files.open(shard);
  if (!file) throw new ModelError(where, 'missing: the model folder has no weights file of this name');
  const reader = new ChunkReader(file.chunks);
  // Without a known size, offsets are checked as the stream ends instead of up front.
  const sizeBound = file.size ?? Number.MAX_SAFE_INTEGER;
  const truncated = (need: number) => new ModelError(where, `truncated safetensors file: it ends at byte ${reader.offset}, before byte ${need}`);
  try {
    const first8 = await reader.readExact(8);
    if (!first8) throw truncated(8);
    const headerSize = safetensorsHeaderSize(first8, sizeBound, where);
    const rest = await reader.readExact(headerSize - 8);
    if (!rest) throw truncated(headerSize);
    const headerBytes = new Uint8Array(headerSize);
    headerBytes.set(first8);
    headerBytes.set(rest, 8);
    const header = parseSafetensorsHeader(headerBytes, sizeBound, where);

    const tensors = header.tensors.filter((t) => wanted(t.name)).sort((a, b) => a.begin - b.begin);
    let unflushed = 0;
    for (const t of tensors) {
      const shape = sink.expectShape(t.name);
      if (t.shape.length !== shape.length || t.shape.some((n, i) => n !== shape[i])) {
        throw new ModelError(where, `tensor "${t.name}" has shape [${t.shape.join(', ')}], but config.json implies [${shape.join(', ')}]`);
      }
      if (!(await reader.skip(t.begin - reader.offset))) throw truncated(t.begin);
      const tensor = await uploadTensor(k, reader, t, () => truncated(t.end));
      sink.onTensor(t.name, tensor, t.shape.reduce((a, b) => a * b, 1));
      unflushed += t.end - t.begin;
      if (unflushed >= FLUSH_BYTES) {
        await k.device.queue.onSubmittedWorkDone();
        unflushed = 0;
      }
    }
  } finally {
    await reader.close();
  }
}

async function uploadTensor(k: Kernels, reader: ChunkReader, t: SafetensorsTensor, truncated: () => Error): Promise<GpuTensor> {
  const device = k.device;
  const elements = t.shape.reduce((a, b) => a * b, 1);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  if (t.dtype === 'F32' || t.shape.length > 1) {
    const what = `tensor "${t.name}" (${t.dtype})`;
    const target = await allocate(device, t.end - t.begin, usage, what);
    try {
      await streamInto(device.queue, reader, target, t.end - t.begin, truncated);
    } catch (e) {
      target.destroy();
      throw e;
    }
    return { buffer: target, dtype: t.dtype };
  }
  const target = await allocate(device, elements * 4, usage, `tensor "${t.name}" (f32)`);
  const staging = await allocate(device, t.end - t.begin, usage, `staging for tensor "${t.name}"`);
  try {
    await streamInto(device.queue, reader, staging, t.end - t.begin, truncated);
    const encoder = device.createCommandEncoder({ label: `widen ${t.name}` });
    const dims = encodeWiden(k, encoder, { src: staging, dst: target, count: elements, dtype: t.dtype });
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    dims.destroy();
  } catch (e) {
    target.destroy();
    throw e;
  } finally {
    staging.destroy();
  }
  return { buffer: target, dtype: 'F32' };
}

/** Writes the next `length` bytes of the stream into `target` from offset 0 (writes need 4-byte multiples). */
async function streamInto(queue: GPUQueue, reader: ChunkReader, target: GPUBuffer, length: number, truncated: () => Error): Promise<void> {
  const carry = new Uint8Array(4);
  let carried = 0;
  let written = 0;
  while (written + carried < length) {
    let piece = await reader.next(length - written - carried);
    if (!piece) throw truncated();
    if (carried > 0) {
      const take = Math.min(4 - carried, piece.length);
      carry.set(piece.subarray(0, take), carried);
      carried += take;
      piece = piece.subarray(take);
      if (carried === 4) {
        queue.writeBuffer(target, written, carry);
        written += 4;
        carried = 0;
      }
    }
    const whole = piece.length - (piece.length % 4);
    if (whole > 0) {
      queue.writeBuffer(target, written, piece, 0, whole);
      written += whole;
    }
    if (whole < piece.length) {
      carry.set(piece.subarray(whole));
      carried = piece.length - whole;
    }
  }
  if (carried > 0) {
    carry.fill(0, carried);
    queue.writeBuffer(target, written, carry);
  }
}
