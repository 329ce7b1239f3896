import type { Directory } from './directory.js';

/**
 * Keeps something derived from the directory (a face's precomputed answers) current: calls
 * `rebuild` after every 'change', coalescing bursts into one rebuild at a time, never two at
 * once. A failed rebuild goes to `onError` and the previous state stays in service.
 */
export function followChanges(directory: Directory, rebuild: () => Promise<void>, onError: (err: unknown) => void): { settled(): Promise<void>; stop(): void } {
  let dirty = false;
  let building: Promise<void> | null = null;
  const onChange = () => {
    dirty = true;
    building ??= (async () => {
      try {
        while (dirty) {
          dirty = false;
          await rebuild().catch(onError);
        }
      } finally {
        building = null;
      }
    })();
  };
  directory.on('change', onChange);
  return {
    /** Resolves when every change seen so far has been rebuilt. */
    async settled() {
      while (building) await building;
    },
    stop() {
      directory.off('change', onChange);
    },
  };
}
