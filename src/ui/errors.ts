// Turns pipeline and engine failures into a sentence users can act on and the actions offered
// with it (Open Settings, Retry), in the panel and as a notification. Nothing fails silently.
import type { Action } from '../../webview/chat/messages';
import { AnswerError } from './answerer';

export interface Problem {
  message: string;
  actions: Action[];
}

export function describeFailure(e: unknown): Problem {
  if (!(e instanceof AnswerError)) {
    return { message: `Unexpected error: ${e instanceof Error ? e.message : String(e)}`, actions: ['retry'] };
  }
  switch (e.code) {
    case 'model-missing':
    case 'model-invalid':
      return { message: `${e.message} Set "Repo Lens: Model Path" to a Hugging Face model folder.`, actions: ['openSettings', 'retry'] };
    case 'backend-unavailable':
      return { message: `${e.message} Choose another backend in the settings (auto picks one that works).`, actions: ['openSettings', 'retry'] };
    case 'bad-request':
      return { message: e.message, actions: ['openSettings'] };
    case 'prompt-too-long':
      return { message: `${e.message} Lower "Repo Lens: Context Tokens" or use a model with a longer context.`, actions: ['openSettings'] };
    case 'engine-crashed':
      return { message: `The engine stopped while answering: ${e.message}`, actions: ['retry'] };
    case 'untrusted':
    case 'no-workspace':
      return { message: e.message, actions: [] };
    default:
      return { message: e.message, actions: ['retry'] };
  }
}
