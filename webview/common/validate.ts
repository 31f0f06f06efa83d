// Small checks for messages crossing the webview boundary (both directions validate what they get).
// Each throws MessageError naming the field, so a bad message is reported, never half-applied.

export class MessageError extends Error {}

export type Json = Record<string, unknown>;

export function obj(x: unknown, what: string): Json {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new MessageError(`${what} must be an object`);
  return x as Json;
}

export function str(o: Json, k: string, maxLength = 1 << 20): string {
  const v = o[k];
  if (typeof v !== 'string') throw new MessageError(`${k} must be a string`);
  if (v.length > maxLength) throw new MessageError(`${k} is longer than ${maxLength} characters`);
  return v;
}

export function int(o: Json, k: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new MessageError(`${k} must be an integer in [${min}, ${max}]`);
  return v;
}

export function num(o: Json, k: string, min = -Infinity, max = Infinity): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new MessageError(`${k} must be a number in [${min}, ${max}]`);
  return v;
}

export function bool(o: Json, k: string): boolean {
  const v = o[k];
  if (typeof v !== 'boolean') throw new MessageError(`${k} must be a boolean`);
  return v;
}

export function oneOf<T extends string>(o: Json, k: string, allowed: readonly T[]): T {
  const v = o[k];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new MessageError(`${k} must be one of ${allowed.join(', ')}`);
  return v as T;
}

export function arr(o: Json, k: string, maxLength = 1 << 20): unknown[] {
  const v = o[k];
  if (!Array.isArray(v)) throw new MessageError(`${k} must be an array`);
  if (v.length > maxLength) throw new MessageError(`${k} has more than ${maxLength} items`);
  return v;
}

/** A workspace-relative path: no absolute paths, no '..' segments, no backslashes or NULs. */
export function relPath(o: Json, k: string): string {
  const v = str(o, k, 4096);
  if (v === '' || v.startsWith('/') || /^[a-zA-Z]:/.test(v) || v.includes('\\') || v.includes('\0') || v.split('/').includes('..')) {
    throw new MessageError(`${k} must be a workspace-relative path`);
  }
  return v;
}
