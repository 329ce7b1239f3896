import { isMailmeshError, type ErrorCode } from '../directory/errors.js';

/**
 * One fuzz target: a parser of untrusted input driven with bytes. `fuzz` returns normally or
 * throws; a throw that `expected` accepts is a clean rejection, anything else is a finding
 * (as are a hang and a memory blow-up, seen by the engine's watchdog).
 */
export interface FuzzTarget {
  name: string;
  /** What it drives, for the report. */
  description: string;
  /** Longest input the engine makes (default 4096). */
  maxLen?: number;
  /** Tokens the mutator inserts (protocol keywords, magic numbers). */
  dictionary?: (string | Buffer)[];
  setup?(): Promise<void>;
  /** Releases what setup made (servers, listeners), for replaying inputs in the unit suite. */
  teardown?(): Promise<void>;
  fuzz(data: Buffer): void | Promise<void>;
  expected(e: unknown): boolean;
}

/** A clean rejection: one of our catalogued errors (with one of `codes`, when given). */
export function mailmeshError(...codes: ErrorCode[]): (e: unknown) => boolean {
  return (e) => isMailmeshError(e) && (codes.length === 0 || codes.includes(e.code));
}

/** A finding that is not an exception: an answer that breaks an invariant of the parser. */
export class InvariantBroken extends Error {
  override name = 'InvariantBroken';
}

export function invariant(ok: unknown, what: string): asserts ok {
  if (!ok) throw new InvariantBroken(what);
}
