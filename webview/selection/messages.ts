// Messages between the KV selection panel (src/ui/selectionPanel.ts) and its webview.
// The trace is checked field by field for what the panel reads, so a malformed or foreign
// trace is refused with a message naming the field instead of drawing garbage.
import type { SelectionTrace } from '../../src/trace/types';
import { validateTrace } from '../../src/trace/validate';
import { int, MessageError, obj, relPath, str, type Json } from '../common/validate';

export type ToWebview =
  | { type: 'trace'; title: string; trace: SelectionTrace }
  | { type: 'empty'; message: string };

export type FromWebview =
  | { type: 'ready' }
  | { type: 'open'; file: string; startLine: number; endLine: number }
  | { type: 'invalid'; reason: string };

export interface SelectionState {
  title: string;
  trace: SelectionTrace | null;
  /** The scrubbed token, or null for the whole answer. */
  step: number | null;
}

/** Checks a trace with the trace module's validator (docs/trace.md), plus that every file it
 *  names is a workspace-relative path (the panel asks the extension to open them). */
export function parseTrace(x: unknown): SelectionTrace {
  const problems = validateTrace(x);
  if (problems.length) {
    throw new MessageError(`not a valid selection trace: ${problems.slice(0, 3).map((p) => `${p.path} ${p.message}`).join('; ')}`);
  }
  const trace = x as SelectionTrace;
  for (const b of trace.manifest) {
    for (const s of b.spans) if (!s.source.startsWith('<')) relPath(s as unknown as Json, 'source');
  }
  return trace;
}

export function parseToWebview(x: unknown): ToWebview {
  const o = obj(x, 'message');
  switch (o.type) {
    case 'trace': return { type: 'trace', title: str(o, 'title', 1024), trace: parseTrace(o.trace) };
    case 'empty': return { type: 'empty', message: str(o, 'message', 4096) };
    default: throw new MessageError(`unknown message type ${JSON.stringify(o.type)}`);
  }
}

export function parseFromWebview(x: unknown): FromWebview {
  const o = obj(x, 'message');
  switch (o.type) {
    case 'ready': return { type: 'ready' };
    case 'open': {
      const startLine = int(o, 'startLine', 1);
      return { type: 'open', file: relPath(o, 'file'), startLine, endLine: int(o, 'endLine', startLine) };
    }
    case 'invalid': return { type: 'invalid', reason: str(o, 'reason', 4096) };
    default: throw new MessageError(`unknown message type ${JSON.stringify(o.type)}`);
  }
}

export function parseSelectionState(x: unknown): SelectionState {
  try {
    const o = obj(x, 'state');
    const trace = o.trace ? parseTrace(o.trace) : null;
    const step = typeof o.step === 'number' && trace && Number.isInteger(o.step) && o.step >= 0 && o.step < trace.steps.length ? o.step : null;
    return { title: typeof o.title === 'string' ? o.title.slice(0, 1024) : '', trace, step };
  } catch {
    return { title: '', trace: null, step: null };
  }
}
