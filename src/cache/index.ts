// The disk cache of prefix KV (a repository's prompt prefix, restored in a later engine process
// instead of prefilled again): format.ts (one entry's file), store.ts (a folder: naming, LRU cap,
// abandoned temporary files, clearing), fingerprint.ts (what an entry must match), prefix.ts
// (restore into / save from the engine's model).
export { clearCache, DEFAULT_MAX_BYTES, entryFile, evict, listEntries, sweepAbandoned, type CachedEntry } from './store';
export { EntryReader, FORMAT_VERSION, InvalidEntryError, writeEntry, type EntryMeta, type Fingerprint, type KvShape } from './format';
export { cacheFingerprint, type FingerprintInputs } from './fingerprint';
export { PrefixDiskCache, type PrefixCacheOptions, type Restored } from './prefix';
