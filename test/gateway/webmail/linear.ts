import type { Test } from 'tap';

/** The fastest of `runs` calls of `f` (nanoseconds): the least disturbed by other work on the machine. */
async function fastest(f: () => unknown, runs: number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await f();
    best = Math.min(best, Number(process.hrtime.bigint() - start));
  }
  return best;
}

export const SMALL = 10 * 1024;
export const BIG = 1024 * 1024;
/** Linear: time(1 MB) / time(10 KB) ≈ 100. The bound allows k = 20 times that; quadratic gives ≈ 10 000 and more. */
export const MAX_RATIO = 100 * 20;

/**
 * Checks that `f` takes linear time on the adversarial input `make(n)`: the time of a 1 MB input
 * against a 10 KB one, as a ratio (no absolute threshold). The 10 KB time is that of 100 calls in a
 * row divided by 100, so that it carries its share of garbage collection as the 1 MB call does.
 * A failure of `f` counts as its result (refusing quickly is fine).
 */
export async function linear<T>(t: Test, label: string, make: (n: number) => T, f: (input: T) => unknown): Promise<void> {
  const small = make(SMALL);
  const big = make(BIG);
  const call = async (x: T) => {
    try {
      await f(x);
    } catch {
      // refused input: the time to refuse it is what counts
    }
  };
  const hundredSmall = async () => {
    for (let i = 0; i < BIG / SMALL; i++) await call(small);
  };
  await fastest(hundredSmall, 1); // warm-up
  const ratio = (await fastest(() => call(big), 3)) / ((await fastest(hundredSmall, 3)) / (BIG / SMALL));
  t.ok(ratio < MAX_RATIO, `${label}: time(1 MB)/time(10 KB) = ${ratio.toFixed(0)} (linear ≈ 100, bound ${MAX_RATIO})`);
}

/** `unit` repeated to `n` characters (cut to length). */
export const fill = (unit: string, n: number, head = '', tail = ''): string => head + unit.repeat(Math.ceil(n / unit.length)).slice(0, n) + tail;
