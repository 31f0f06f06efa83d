// Picks the answerer behind the panels. The native engine process (src/qa over EngineClient)
// is the one path today; the WebGPU engine (webview/gpu/) plugs in here for backend "webgpu"
// and for "auto" when no CUDA device is usable.
import * as vscode from 'vscode';
import { AnswerError, type Answerer } from './answerer';

export function createAnswerer(_context: vscode.ExtensionContext, _log: vscode.LogOutputChannel): Answerer {
  return {
    ask: async () => {
      throw new AnswerError('backend-unavailable', 'The engine process is not part of this build yet.');
    },
    status: () => null,
    onStatus: () => ({ dispose() {} }),
    dispose() {},
  };
}
