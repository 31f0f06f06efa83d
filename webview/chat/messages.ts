// Messages between the chat panel (src/ui/chatPanel.ts) and its webview (webview/chat/main.ts).
// Both sides validate what they receive with the parsers below.
import { arr, int, MessageError, num, obj, oneOf, relPath, str, type Json } from '../common/validate';

export type CitationSource = 'attention' | 'mention' | 'context';
const SOURCES: readonly CitationSource[] = ['attention', 'mention', 'context'];

/** A file and line range (1-based, inclusive) that the answer drew on. */
export interface Citation {
  file: string;
  startLine: number;
  endLine: number;
  /** Share of the answer's KV selections that fell in this range (attention), or 0. */
  weight: number;
  /** attention: ranked from a sparse selection trace; mention: named in the conversation;
   *  context: in the model's context (dense attention read every file alike, so none is ranked). */
  source: CitationSource;
}

export type Action = 'openSettings' | 'retry' | 'showSelection';
export type TurnStatus = 'streaming' | 'done' | 'stopped' | 'error';

export interface Turn {
  id: number;
  question: string;
  answer: string;
  status: TurnStatus;
  citations: Citation[];
  error?: { message: string; actions: Action[] };
}

export type ToWebview =
  | { type: 'turn'; turn: Turn }
  | { type: 'token'; turnId: number; text: string }
  | { type: 'progress'; turnId: number; phase: 'load' | 'index' | 'prefill'; done: number; total: number }
  | { type: 'end'; turnId: number; status: TurnStatus; citations: Citation[] }
  | { type: 'error'; turnId: number; message: string; actions: Action[] };

export type FromWebview =
  | { type: 'ready' }
  | { type: 'ask'; question: string }
  | { type: 'stop' }
  | { type: 'open'; citation: Pick<Citation, 'file' | 'startLine' | 'endLine'> }
  | { type: 'action'; action: Action; turnId: number }
  /** The webview rejected a message from the extension (logged there). */
  | { type: 'invalid'; reason: string };

/** What the webview keeps with setState so a reopened or revived panel shows the conversation. */
export interface ChatState {
  turns: Turn[];
  draft: string;
}

const ACTIONS = ['openSettings', 'retry', 'showSelection'] as const;
const STATUSES = ['streaming', 'done', 'stopped', 'error'] as const;
const MAX_QUESTION = 8192;

function citation(x: unknown): Citation {
  const o = obj(x, 'citation');
  const startLine = int(o, 'startLine', 1);
  const endLine = int(o, 'endLine', startLine);
  return { file: relPath(o, 'file'), startLine, endLine, weight: num(o, 'weight', 0, 1), source: oneOf(o, 'source', SOURCES) };
}

function citations(o: Json): Citation[] {
  return arr(o, 'citations', 64).map(citation);
}

function actions(o: Json): Action[] {
  return arr(o, 'actions', 8).map((a) => {
    if (!(ACTIONS as readonly unknown[]).includes(a)) throw new MessageError(`unknown action ${JSON.stringify(a)}`);
    return a as Action;
  });
}

function turn(x: unknown): Turn {
  const o = obj(x, 'turn');
  const t: Turn = {
    id: int(o, 'id'),
    question: str(o, 'question', MAX_QUESTION * 4),
    answer: str(o, 'answer'),
    status: oneOf(o, 'status', STATUSES),
    citations: citations(o),
  };
  if (o.error !== undefined) {
    const e = obj(o.error, 'error');
    t.error = { message: str(e, 'message', 4096), actions: actions(e) };
  }
  return t;
}

/** Validates a message from the extension (used by the webview). */
export function parseToWebview(x: unknown): ToWebview {
  const o = obj(x, 'message');
  switch (o.type) {
    case 'turn': return { type: 'turn', turn: turn(o.turn) };
    case 'token': return { type: 'token', turnId: int(o, 'turnId'), text: str(o, 'text', 65536) };
    case 'progress':
      return { type: 'progress', turnId: int(o, 'turnId'), phase: oneOf(o, 'phase', ['load', 'index', 'prefill'] as const), done: num(o, 'done', 0), total: num(o, 'total', 0) };
    case 'end': return { type: 'end', turnId: int(o, 'turnId'), status: oneOf(o, 'status', STATUSES), citations: citations(o) };
    case 'error': return { type: 'error', turnId: int(o, 'turnId'), message: str(o, 'message', 4096), actions: actions(o) };
    default: throw new MessageError(`unknown message type ${JSON.stringify(o.type)}`);
  }
}

/** Validates a message from the webview (used by the extension). */
export function parseFromWebview(x: unknown): FromWebview {
  const o = obj(x, 'message');
  switch (o.type) {
    case 'ready': return { type: 'ready' };
    case 'ask': {
      const question = str(o, 'question', MAX_QUESTION).trim();
      if (question === '') throw new MessageError('question is empty');
      return { type: 'ask', question };
    }
    case 'stop': return { type: 'stop' };
    case 'open': {
      const c = obj(o.citation, 'citation');
      const startLine = int(c, 'startLine', 1);
      return { type: 'open', citation: { file: relPath(c, 'file'), startLine, endLine: int(c, 'endLine', startLine) } };
    }
    case 'action': return { type: 'action', action: oneOf(o, 'action', ACTIONS), turnId: int(o, 'turnId') };
    case 'invalid': return { type: 'invalid', reason: str(o, 'reason', 4096) };
    default: throw new MessageError(`unknown message type ${JSON.stringify(o.type)}`);
  }
}

/** Validates saved state (it comes back from VS Code on revive and could be from an older version). */
export function parseChatState(x: unknown): ChatState {
  try {
    const o = obj(x, 'state');
    // A turn still streaming when the panel was closed was interrupted: show it as stopped.
    const turns = arr(o, 'turns', 500).map(turn).map((t) => (t.status === 'streaming' ? { ...t, status: 'stopped' as const } : t));
    return { turns, draft: typeof o.draft === 'string' ? o.draft.slice(0, MAX_QUESTION) : '' };
  } catch {
    return { turns: [], draft: '' };
  }
}
