// The one error type for a model folder that cannot be used: it always names the file and the
// problem, so a user can fix the folder without reading our code. Pure (no Node APIs): the
// WebGPU engine in the webview raises the same errors.

export class ModelError extends Error {
  /** The file (or folder) the problem is in, as the caller named it. */
  readonly file: string;

  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ModelError';
    this.file = file;
  }
}
