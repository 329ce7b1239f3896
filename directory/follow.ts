import type { Directory } from './directory.js';

/** Something derived from the directory, kept current by followFromStart. */
export interface Follower {
  /** Resolves when every change seen so far has been rebuilt. */
  settled(): Promise<void>;
  stop(): void;
}

/**
 * Keeps something derived from the directory (a face's precomputed answers) current: runs the
 * first `rebuild` now and one after every 'change', coalescing bursts into one rebuild at a
 * time, never two at once. Following starts before the first build, which counts as the
 * running build, so a change during it is rebuilt after it. Resolves when the first build is
 * done; if it fails, stops following and rejects with its error. A later failed rebuild goes
 * to `onError` and the previous state stays in service.
 */
export async function followFromStart(directory: Directory, rebuild: () => Promise<void>, onError: (err: unknown) => void): Promise<Follower> {
  let dirty = false;
  let building: Promise<void> | null = null;
  const loop = async (first?: Promise<void>) => {
    try {
      if (first) await first.catch(() => undefined); // its error goes to the caller below
      while (dirty) {
        dirty = false;
        await rebuild().catch(onError);
      }
    } finally {
      building = null;
    }
  };
  const onChange = () => {
    dirty = true;
    building ??= loop();
  };
  directory.on('change', onChange);
  const first = rebuild();
  building = loop(first);
  try {
    await first;
  } catch (e) {
    directory.off('change', onChange);
    throw e;
  }
  return {
    async settled() {
      while (building) await building;
    },
    stop() {
      directory.off('change', onChange);
    },
  };
}
