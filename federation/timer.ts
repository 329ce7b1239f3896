import type { Logger } from 'pino';
import type { Metrics } from '../directory/metrics.js';

/** Where periodic federation work reports a failed tick: the log and `mailmesh_faults_total{face}`. */
export interface TickFaults {
  logger?: Pick<Logger, 'warn'>;
  metrics?: Metrics;
}

/**
 * Runs `work` every `intervalMs` (and once at once when `immediate`), one run at a time. The
 * timer owns its errors: a failed run, or a logger that throws while reporting it, is counted
 * as `mailmesh_faults_total{face}` and logged, and nothing ever escapes the timer. Returns a stop function.
 */
export function every(intervalMs: number, face: string, work: () => Promise<unknown>, o: TickFaults & { immediate?: boolean; what: string }): () => void {
  let running = false;
  const fault = (err: unknown) => {
    o.metrics?.faults().inc({ face });
    try {
      o.logger?.warn({ err, face }, `${o.what} failed`);
    } catch {
      // The log itself is broken: the counter above is all that can be done.
    }
  };
  const tick = () => {
    if (running) return;
    running = true;
    let p: Promise<unknown>;
    try {
      p = work();
    } catch (e) {
      p = Promise.reject(e);
    }
    void p.catch(fault).finally(() => (running = false));
  };
  if (o.immediate) tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
