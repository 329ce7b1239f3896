/**
 * Exit codes in the sysexits(3) style (BSD sysexits.h), so a supervisor (systemd, Docker, a
 * shell script) can tell a bad command line or configuration from an unavailable port or
 * service and from a crash. Every command of cli/main.ts exits with one of these (docs/operations.md).
 */
export const EXIT = {
  /** Success. */
  OK: 0,
  /** A command answered "no" (doctor found a failure, a lookup found nothing, a check failed). */
  FAILURE: 1,
  /** Doctor or monitor found a violation (pin, proof): distinct from a plain failure. */
  VIOLATION: 2,
  /** EX_USAGE: the command line is wrong (unknown option, missing argument). */
  USAGE: 64,
  /** EX_DATAERR: input data is wrong (a key file, a record, a bundle that does not parse). */
  DATAERR: 65,
  /** EX_NOINPUT: an input file does not exist or cannot be read. */
  NOINPUT: 66,
  /** EX_UNAVAILABLE: a port is taken, the store or a required service cannot be reached. */
  UNAVAILABLE: 69,
  /** EX_SOFTWARE: an internal error (a bug). */
  SOFTWARE: 70,
  /** EX_TEMPFAIL: try again later (a lease held elsewhere, a serial conflict). */
  TEMPFAIL: 75,
  /** EX_NOPERM: the master key or a token does not open what it should. */
  NOPERM: 77,
  /** EX_CONFIG: the configuration is invalid. */
  CONFIG: 78,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
