// Coalesces a stream of small texts (an answer's tokens) into few messages: the first text of a
// quiet spell goes out at once (the answer shows without delay), the texts that follow within
// `intervalMs` of a send are joined into one message at the interval's end.
// Why: a fast model writes hundreds of tokens a second, and each message to a webview passes through
// the workbench; a Stop pressed in the panel travels back behind them (the tiny model's 240-token
// answer often ended before its Stop reached the extension host). Pure: no vscode import.

export class TextBatcher {
  private buffer = '';
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `send` gets each text of a quiet spell at once, then the texts pushed since, joined, `intervalMs`
   *  after the last send; a batch is sent early rather than grow past `maxChars`. */
  constructor(private readonly send: (text: string) => void, private readonly intervalMs: number, private readonly maxChars: number) {}

  push(text: string): void {
    if (this.timer === undefined) { // quiet: send now, and hold what follows for an interval
      this.send(text);
      this.timer = setTimeout(() => this.tick(), this.intervalMs);
      return;
    }
    if (this.buffer && this.buffer.length + text.length > this.maxChars) this.emit();
    this.buffer += text;
  }

  /** Sends what is buffered now (before the message that ends the answer) and stops the timer. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.emit();
  }

  // The interval after a send has passed: send what came meanwhile and wait another, or go quiet.
  private tick(): void {
    this.timer = undefined;
    if (!this.buffer) return;
    this.emit();
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }

  private emit(): void {
    if (!this.buffer) return;
    const text = this.buffer;
    this.buffer = '';
    this.send(text);
  }
}
