// What the UI needs from the question-answering pipeline (src/qa/, which runs the context builder
// and talks to an engine). The panels depend only on this shape, so the native engine process
// and the WebGPU engine (webview/gpu/) plug in behind the same interface.
import type { ErrorCode } from '../engine/protocol';
import type { SelectionTrace } from '../trace/types';

export interface CodeSelection {
  /** Workspace-relative path. */
  file: string;
  startLine: number;
  endLine: number;
  text: string;
}

export interface AskRequest {
  question: string;
  /** Explain Selection: the code the question is about. */
  selection?: CodeSelection;
  /** Earlier turns of the conversation, oldest first (follow-up questions). */
  history: { question: string; answer: string }[];
}

export type ProgressPhase = 'load' | 'index' | 'prefill';

export interface AskEvents {
  /** load: reading the model; index: reading and tokenizing the workspace; prefill: running the prompt through the model. */
  progress(phase: ProgressPhase, done: number, total: number): void;
  token(text: string): void;
}

export interface AskResult {
  text: string;
  finishReason: 'eos' | 'length' | 'cancelled';
  promptTokens: number;
  /** Selection trace with its block manifest; null when the engine did not record one. */
  trace: SelectionTrace | null;
  /** Workspace files the context held, in prompt order (citations when attention does not rank them). */
  files: { path: string; lines: number }[];
}

export interface EngineStatus {
  backend: string;
  backendReason: string;
  model: string;
  contextTokens: number;
  /** Bytes of model weights the engine holds, when known. */
  weightBytes: number | null;
}

/** Failures users can act on; `code` picks the actions offered (Open Settings, Retry). */
export class AnswerError extends Error {
  constructor(readonly code: ErrorCode | 'untrusted' | 'no-workspace', message: string) {
    super(message);
  }
}

export interface Answerer {
  ask(request: AskRequest, events: AskEvents, signal: AbortSignal): Promise<AskResult>;
  /** The loaded engine's state, or null before the first load. */
  status(): EngineStatus | null;
  /** Fires when the engine's status changes (loaded, restarted after a crash, failed). */
  onStatus(listener: () => void): { dispose(): void };
  dispose(): void;
}
