// A process that starts writing a disk-cache entry and stops forever after its first KV chunk,
// so test/unit/cache-format.test.ts can kill it mid-write. Usage: cache-child.ts FILE
import { writeSync } from 'node:fs';
import { writeEntry } from '../../src/cache/format';
import { SHAPE, FINGERPRINT, syntheticSpan } from './cache-helpers';

const file = process.argv[2];
let chunks = 0;
writeEntry(file, {
  fingerprint: FINGERPRINT, shape: SHAPE, ids: Array.from({ length: 40 }, (_, i) => i + 1), chunkPositions: 8,
  readSpan: (start, count) => {
    if (chunks++ === 1) {
      writeSync(1, 'one chunk written\n'); // a pipe: synchronous, so the parent sees it before the wait below
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // until killed
    }
    return syntheticSpan(start, count);
  },
});
