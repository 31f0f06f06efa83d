// Shared by the context builder's tests: a deterministic fake tokenizer and temporary repositories.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ContextTokenizer } from '../../src/context/index';

/**
 * Splits text into pieces of up to 3 code points (so tokens straddle newlines and file
 * boundaries) and numbers each distinct piece on first sight. decode(encode(x)) === x.
 * `encoded` records every text passed to encode, to count cache misses.
 */
export class FakeTokenizer implements ContextTokenizer {
  private readonly ids = new Map<string, number>();
  private readonly pieces: string[] = [];
  readonly encoded: string[] = [];

  encode(text: string): number[] {
    this.encoded.push(text);
    const chars = Array.from(text);
    const out: number[] = [];
    for (let i = 0; i < chars.length; i += 3) {
      const piece = chars.slice(i, i + 3).join('');
      let id = this.ids.get(piece);
      if (id === undefined) {
        id = this.pieces.length;
        this.pieces.push(piece);
        this.ids.set(piece, id);
      }
      out.push(id);
    }
    return out;
  }

  decode(ids: number[]): string {
    return ids.map((id) => this.pieces[id]).join('');
  }
}

/**
 * A temporary folder filled from a map of relative path → content; removed by cleanup().
 * `inMemory`: under /dev/shm (tmpfs) where there is one, for tests that create many files.
 */
export function makeRepo(
  files: Record<string, string | Buffer>,
  options: { inMemory?: boolean } = {},
): { root: string; write(rel: string, content: string | Buffer): void; cleanup(): void } {
  const base = options.inMemory && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const root = mkdtempSync(join(base, 'repo-lens-context-'));
  const write = (rel: string, content: string | Buffer) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), content);
  };
  for (const [rel, content] of Object.entries(files)) write(rel, content);
  return { root, write, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function reasonOf(skipped: { path: string; reason: string }[], path: string): string | undefined {
  return skipped.find((s) => s.path === path)?.reason;
}
