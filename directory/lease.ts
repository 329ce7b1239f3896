import type { KvStore } from './store/store.js';

export interface LeaderOptions {
  store: KvStore;
  /** The lease's name: one per kind of work (`reverify`, `mirror:<url>`). */
  name: string;
  /** This node; unique per process. */
  owner: string;
  /** How long a taken lease lasts without renewal; it is renewed every third of it. */
  ttlSec: number;
  /** Starts the work; returns what stops it. */
  start: () => () => void;
  onError?: (err: unknown) => void;
}

export interface Leader {
  /** Takes or renews the lease and starts or stops the work accordingly (the timer calls it). */
  tick(): Promise<void>;
  /** Stops the timer and the work, and gives the lease up. */
  stop(): Promise<void>;
  readonly running: boolean;
}

/**
 * Runs periodic work on one node of a cluster at a time: the node that holds the store lease
 * `name` runs it; the others wait and take over within `ttlSec` when the holder is gone. A node
 * that cannot reach the store, or has lost its lease, stops its work (better not at all than
 * twice).
 */
export function runWhileLeader(o: LeaderOptions): Leader {
  let stopWork: (() => void) | undefined;
  let closed = false;
  const halt = () => {
    stopWork?.();
    stopWork = undefined;
  };
  const leader: Leader = {
    async tick() {
      let held = false;
      try {
        held = await o.store.acquireLease(o.name, o.owner, o.ttlSec);
      } catch (err) {
        o.onError?.(err);
      }
      if (closed) return;
      if (held && !stopWork) stopWork = o.start();
      else if (!held) halt();
    },
    async stop() {
      closed = true;
      clearInterval(timer);
      halt();
      await o.store.releaseLease(o.name, o.owner).catch((err: unknown) => o.onError?.(err));
    },
    get running() {
      return stopWork !== undefined;
    },
  };
  const timer = setInterval(() => void leader.tick(), (o.ttlSec * 1000) / 3);
  timer.unref();
  void leader.tick();
  return leader;
}
