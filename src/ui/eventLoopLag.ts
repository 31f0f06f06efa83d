// Measures how long the extension host's event loop was blocked (the editor freezes while it is).
// Sampled continuously with perf_hooks; phases (indexing, generation) are marked so the worst
// delay can be attributed. REPO_LENS_LAG_FILE, when set, receives the report as JSON on every
// change of phase and on shutdown (the end-to-end tests read it).
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';

// perf_hooks records the whole interval between samples, so each value includes this sampling
// interval: the figures are upper bounds on the blocking time, never below 5 ms.
const RESOLUTION_MS = 5;

export interface LagReport {
  /** Milliseconds, sampling interval included. */
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  samples: number;
}

export class EventLoopLag {
  private readonly overall: IntervalHistogram;
  private readonly histograms = new Map<string, IntervalHistogram>();

  constructor(private readonly reportFile = process.env.REPO_LENS_LAG_FILE) {
    this.overall = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.overall.enable();
  }

  /** Starts attributing delays to `phase` until the returned function is called. */
  begin(phase: string): () => void {
    let h = this.histograms.get(phase);
    if (!h) this.histograms.set(phase, (h = monitorEventLoopDelay({ resolution: RESOLUTION_MS })));
    h.enable();
    return () => {
      h.disable();
      this.flush();
    };
  }

  /** A sequence of phases: entering one ends the previous; entering the current one again is a no-op. */
  phases(first: string): { enter(phase: string): void; end(): void } {
    let current = first;
    let end = this.begin(first);
    return {
      enter: (phase) => {
        if (phase === current) return;
        end();
        current = phase;
        end = this.begin(phase);
      },
      end: () => end(),
    };
  }

  report(): { overall: LagReport; phases: Record<string, LagReport> } {
    const phases: Record<string, LagReport> = {};
    for (const [name, h] of this.histograms) phases[name] = summarize(h);
    return { overall: summarize(this.overall), phases };
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
    this.overall.disable();
    for (const h of this.histograms.values()) h.disable();
  }
}

function summarize(h: IntervalHistogram): LagReport {
  const ms = (ns: number) => Math.round((ns / 1e6) * 100) / 100;
  const n = h.count;
  return { maxMs: n ? ms(h.max) : 0, p99Ms: n ? ms(h.percentile(99)) : 0, meanMs: n ? ms(h.mean) : 0, samples: n };
}
