// Where the engine reads a model folder from. In the webview this is a URL the extension host made
// readable (webview.asWebviewUri of the model folder); tests serve the folder over local HTTP.
// Files are streamed: weights go to the GPU chunk by chunk, never held whole in the JS heap.

import { ModelError } from '../../src/model/errors';

/** Bytes of a file (never backed by a SharedArrayBuffer: WebGPU writes take them). */
export type Bytes = Uint8Array<ArrayBuffer>;

export interface ModelFile {
  /** Bytes in the file, when the source knows it before reading (HTTP Content-Length). */
  size: number | null;
  chunks: AsyncIterable<Bytes>;
}

export interface ModelFiles {
  /** How errors name a file of the folder. */
  describe(name: string): string;
  /** The file's text, or null when the folder has no such file. */
  readText(name: string): Promise<string | null>;
  /** The file as a stream of chunks, or null when the folder has no such file. */
  open(name: string): Promise<ModelFile | null>;
}

/** A model folder readable with fetch() under `base` (absolute, or relative to the page). */
export function urlModelFiles(base: string, fetcher: typeof fetch = fetch): ModelFiles {
  const root = new URL(base.endsWith('/') ? base : base + '/', globalThis.location?.href).href;
  const get = async (name: string): Promise<Response | null> => {
    const url = new URL(name, root).href;
    let response: Response;
    try {
      response = await fetcher(url);
    } catch (e) {
      throw new ModelError(url, `cannot be fetched (${(e as Error).message}): is the model folder readable from the webview?`);
    }
    if (response.status === 404) return null;
    if (!response.ok) throw new ModelError(url, `cannot be read: HTTP ${response.status} ${response.statusText}`);
    return response;
  };
  return {
    describe: (name) => root + name,
    readText: async (name) => (await get(name))?.text() ?? null,
    open: async (name) => {
      const response = await get(name);
      if (!response) return null;
      const length = response.headers.get('content-length');
      const body = response.body;
      if (!body) throw new ModelError(root + name, 'the response has no body');
      return { size: length === null ? null : Number(length), chunks: streamChunks(body) };
    },
  };
}

async function* streamChunks(body: ReadableStream<Bytes>): AsyncIterable<Bytes> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value.length > 0) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** Reads a chunk stream in pieces of the caller's choosing, without copying where it can. */
export class ChunkReader {
  private readonly iterator: AsyncIterator<Bytes>;
  private current: Bytes = new Uint8Array(0);
  private at = 0;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(chunks: AsyncIterable<Bytes>) {
    this.iterator = chunks[Symbol.asyncIterator]();
  }

  /** Up to `max` bytes (a view into the current chunk), or null at the end of the stream. */
  async next(max: number): Promise<Bytes | null> {
    while (this.at >= this.current.length) {
      const r = await this.iterator.next();
      if (r.done) return null;
      this.current = r.value;
      this.at = 0;
    }
    const piece = this.current.subarray(this.at, this.at + Math.min(max, this.current.length - this.at));
    this.at += piece.length;
    this.offset += piece.length;
    return piece;
  }

  /** Exactly `n` bytes (copied), or null if the stream ends first. */
  async readExact(n: number): Promise<Bytes | null> {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const piece = await this.next(n - filled);
      if (!piece) return null;
      out.set(piece, filled);
      filled += piece.length;
    }
    return out;
  }

  /** Skips `n` bytes; false if the stream ends first. */
  async skip(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      const piece = await this.next(left);
      if (!piece) return false;
      left -= piece.length;
    }
    return true;
  }

  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}
