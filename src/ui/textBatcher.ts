// Coalesces a stream of small texts (an answer's tokens) into one message per interval.
// Why: a fast model writes hundreds of tokens a second, and each message to a webview passes through
// the workbench; a Stop pressed in the panel travels back behind them (the tiny model's 240-token
// answer often ended before its Stop reached the extension host). Pure: no vscode import.

export class TextBatcher {
  private buffer = '';
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `send` gets the texts pushed since the last send, joined, at most `intervalMs` after the first
   *  of them; a batch is sent early rather than grow past `maxChars`. */
  constructor(private readonly send: (text: string) => void, private readonly intervalMs: number, private readonly maxChars: number) {}

  push(text: string): void {
    if (this.buffer && this.buffer.length + text.length > this.maxChars) this.flush();
    this.buffer += text;
    this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  /** Sends what is buffered now (before the message that ends the answer) and stops the timer. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.buffer) return;
    const text = this.buffer;
    this.buffer = '';
    this.send(text);
  }
}
