// Measures how late the extension host's event loop runs a timer (the editor freezes while it
// is late). A 10 ms interval timer records how far past its due time each tick fires; samples
// go to the overall histogram and to the phase the answer is in (indexing, prefill, generation).
// Lateness also counts other extensions and a busy CPU, so Repo Lens's own main-thread callbacks
// are timed too (`own`): how long our code itself held the loop. REPO_LENS_LAG_FILE, when set, receives the report as
// JSON at the end of each phase and on shutdown (the end-to-end tests read it).
import { writeFileSync } from 'node:fs';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

const INTERVAL_MS = 10;

export interface LagReport {
  /** Milliseconds: how late a tick fired (or, under `own`, how long one of our callbacks ran). */
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  samples: number;
}

export class EventLoopLag {
  private readonly overall = createHistogram();
  private readonly byPhase = new Map<string, RecordableHistogram>();
  private readonly ownByPhase = new Map<string, RecordableHistogram>();
  private readonly ownOverall = createHistogram();
  /** The longest of our callbacks per phase, by label: what to look at when `own` is high. */
  private readonly slowest = new Map<string, { label: string; ms: number }>();
  private currentPhase: string | null = null;
  /** The most late tick of each phase and when it fired, to line it up with the extension's log. */
  private readonly worst = new Map<string, { ms: number; at: string }>();
  private current: RecordableHistogram | null = null;
  private currentOwn: RecordableHistogram | null = null;
  private last = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly reportFile = process.env.REPO_LENS_LAG_FILE) {
    this.timer = setInterval(() => this.tick(), INTERVAL_MS);
    this.timer.unref();
  }

  private tick(): void {
    const now = performance.now();
    const lateUs = Math.max(1, Math.round((now - this.last - INTERVAL_MS) * 1000)); // histograms take integers >= 1
    this.last = now;
    this.overall.record(lateUs);
    this.current?.record(lateUs);
    const phase = this.currentPhase ?? 'idle';
    if (lateUs / 1000 > (this.worst.get(phase)?.ms ?? -1)) this.worst.set(phase, { ms: Math.round(lateUs / 10) / 100, at: new Date().toISOString() });
  }

  /** A sequence of phases: entering one ends the previous; entering the current one again is a no-op. */
  phases(first: string): { enter(phase: string): void; end(): void } {
    let name = first;
    this.enter(first);
    return {
      enter: (phase) => {
        if (phase === name) return;
        name = phase;
        this.enter(phase);
      },
      end: () => {
        this.current = null;
        this.currentOwn = null;
        this.currentPhase = null;
        this.flush();
      },
    };
  }

  private enter(phase: string): void {
    let h = this.byPhase.get(phase);
    if (!h) this.byPhase.set(phase, (h = createHistogram()));
    let own = this.ownByPhase.get(phase);
    if (!own) this.ownByPhase.set(phase, (own = createHistogram()));
    this.current = h;
    this.currentOwn = own;
    this.currentPhase = phase;
  }

  /** Runs a Repo Lens callback on the main thread and records how long it held the loop; `label` names it in the report's slowest. */
  timed<T>(label: string, fn: () => T): T {
    const start = performance.now();
    try {
      return fn();
    } finally {
      const ms = performance.now() - start;
      const us = Math.max(1, Math.round(ms * 1000));
      this.ownOverall.record(us);
      this.currentOwn?.record(us);
      const phase = this.currentPhase ?? 'idle';
      if (ms > (this.slowest.get(phase)?.ms ?? -1)) this.slowest.set(phase, { label, ms: Math.round(ms * 100) / 100 });
    }
  }

  report(): { intervalMs: number; overall: LagReport; phases: Record<string, LagReport>; worstTick: Record<string, { ms: number; at: string }>; own: { overall: LagReport; phases: Record<string, LagReport>; slowest: Record<string, { label: string; ms: number }> } } {
    const phases: Record<string, LagReport> = {};
    for (const [name, h] of this.byPhase) phases[name] = summarize(h);
    const own: Record<string, LagReport> = {};
    for (const [name, h] of this.ownByPhase) own[name] = summarize(h);
    return { intervalMs: INTERVAL_MS, overall: summarize(this.overall), phases, worstTick: Object.fromEntries(this.worst), own: { overall: summarize(this.ownOverall), phases: own, slowest: Object.fromEntries(this.slowest) } };
  }

  flush(): void {
    if (!this.reportFile) return;
    try {
      writeFileSync(this.reportFile, JSON.stringify({ pid: process.pid, at: new Date().toISOString(), ...this.report() }, null, 2));
    } catch {
      // The report is a diagnostic; a read-only path must not break the extension.
    }
  }

  dispose(): void {
    this.flush();
    clearInterval(this.timer);
  }
}

function summarize(h: RecordableHistogram): LagReport {
  const ms = (us: number) => Math.round(us / 10) / 100;
  const n = h.count;
  return { maxMs: n ? ms(h.max) : 0, p99Ms: n ? ms(h.percentile(99)) : 0, meanMs: n ? ms(h.mean) : 0, samples: n };
}
