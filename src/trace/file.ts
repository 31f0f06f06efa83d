// Reading and writing trace files (one JSON document). Both validate, so a trace on disk is
// always one the selection panel can show; a bad file is reported with its path and problems.
import { readFileSync, writeFileSync } from 'node:fs';
import type { SelectionTrace } from './types';
import { validateTrace, type TraceProblem } from './validate';

export class TraceError extends Error {
  constructor(readonly file: string, readonly problems: TraceProblem[]) {
    super(`${file}: not a valid selection trace: ${problems.slice(0, 5).map((p) => `${p.path} ${p.message}`).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`);
    this.name = 'TraceError';
  }
}

export function writeTrace(file: string, trace: SelectionTrace): void {
  const problems = validateTrace(trace);
  if (problems.length > 0) throw new TraceError(file, problems);
  writeFileSync(file, JSON.stringify(trace) + '\n');
}

export function readTrace(file: string): SelectionTrace {
  let x: unknown;
  try {
    x = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TraceError(file, [{ path: '$', message: `cannot read JSON: ${(e as Error).message}` }]);
  }
  const problems = validateTrace(x);
  if (problems.length > 0) throw new TraceError(file, problems);
  return x as SelectionTrace;
}
