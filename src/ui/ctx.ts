// The extension's state for one activation: what it owns (panels, status bar, the answerer and
// its engine, the event-loop monitor) and when each is disposed. Commands receive it.
import * as vscode from 'vscode';
import type { SelectionTrace } from '../trace/types';
import type { Answerer } from './answerer';
import type { EventLoopLag } from './eventLoopLag';

export interface LastTrace {
  title: string;
  trace: SelectionTrace;
}

export class Ctx implements vscode.Disposable {
  private readonly owned: vscode.Disposable[] = [];
  private readonly traceChanged = new vscode.EventEmitter<LastTrace>();
  /** The latest answer's selection trace (what Show KV Selection displays). */
  lastTrace: LastTrace | null = null;
  readonly onTrace = this.traceChanged.event;

  constructor(
    readonly extension: vscode.ExtensionContext,
    readonly log: vscode.LogOutputChannel,
    readonly answerer: Answerer,
    readonly lag: EventLoopLag,
  ) {
    this.own(this.traceChanged);
  }

  get extensionUri(): vscode.Uri {
    return this.extension.extensionUri;
  }

  own<T extends vscode.Disposable>(d: T): T {
    this.owned.push(d);
    return d;
  }

  setTrace(t: LastTrace): void {
    this.lastTrace = t;
    this.traceChanged.fire(t);
  }

  dispose(): void {
    for (const d of this.owned.splice(0).reverse()) d.dispose();
  }
}
