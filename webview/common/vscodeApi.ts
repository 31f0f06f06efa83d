// The API VS Code injects into webviews (acquireVsCodeApi may be called once per page load).

export interface VsCodeApi<State> {
  postMessage(message: unknown): void;
  getState(): State | undefined;
  setState(state: State): void;
}

declare function acquireVsCodeApi<State>(): VsCodeApi<State>;

export function vscodeApi<State>(): VsCodeApi<State> {
  return acquireVsCodeApi<State>();
}

/** Reports a message that failed validation back to the extension's log instead of dropping it silently. */
export function reportInvalid(api: VsCodeApi<unknown>, error: unknown): void {
  console.error('Repo Lens webview: invalid message', error);
  api.postMessage({ type: 'invalid', reason: error instanceof Error ? error.message : String(error) });
}
