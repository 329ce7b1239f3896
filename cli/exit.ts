import { CommanderError } from 'commander';
import { asMailmeshError, MailmeshError, type ErrorCode, type ErrorKind } from '../directory/errors.js';

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

/**
 * The exit code of an error by its stable code (directory/errors.ts, gateway/errors.ts); codes not
 * named here take their kind's (KIND_EXIT). One table for every command (docs/operations.md).
 */
const CODE_EXIT: Partial<Record<ErrorCode, ExitCode>> = {
  CONFIG_INVALID: EXIT.CONFIG,
  MASTER_KEY_INVALID: EXIT.CONFIG,
  FEDERATION_DISABLED: EXIT.CONFIG,
  MASTER_KEY_MISMATCH: EXIT.NOPERM,
  SEALED_DATA_CORRUPT: EXIT.DATAERR,
  LISTEN_FAILED: EXIT.UNAVAILABLE,
  STORE_UNAVAILABLE: EXIT.UNAVAILABLE,
  LOOKUP_UNAVAILABLE: EXIT.UNAVAILABLE,
  SERIAL_CONFLICT: EXIT.TEMPFAIL,
  // A key roll waits for its overlap, or for the TXT that names the next keys: run it again later.
  ROLL_TOO_EARLY: EXIT.TEMPFAIL,
  ROLL_PROOF_MISSING: EXIT.TEMPFAIL,
  RECOVERY_PENDING: EXIT.TEMPFAIL,
  RATE_LIMITED: EXIT.TEMPFAIL,
  TOO_MANY_CONNECTIONS: EXIT.TEMPFAIL,
  // The store's upgrade and backup errors (docs/backup.md), whichever command meets them (serve too).
  STORE_SCHEMA_NEWER: EXIT.CONFIG,
  STORE_SCHEMA_INVALID: EXIT.DATAERR,
  STORE_MIGRATION_BUSY: EXIT.TEMPFAIL,
  STORE_NOT_EMPTY: EXIT.USAGE,
  BACKUP_INVALID: EXIT.DATAERR,
  BACKUP_DECRYPT: EXIT.NOPERM,
  BACKUP_KEY_MISMATCH: EXIT.NOPERM,
  BACKUP_WEAK_PASSPHRASE: EXIT.USAGE,
};

const KIND_EXIT: Record<ErrorKind, ExitCode> = {
  invalid: EXIT.DATAERR,
  not_found: EXIT.FAILURE,
  conflict: EXIT.DATAERR,
  forbidden: EXIT.NOPERM,
  unavailable: EXIT.UNAVAILABLE,
  internal: EXIT.SOFTWARE,
};

/** Node's system error codes (errno names) of a failure that is not a MailmeshError. */
const ERRNO_EXIT: Record<string, ExitCode> = {
  ENOENT: EXIT.NOINPUT,
  EISDIR: EXIT.NOINPUT,
  ENOTDIR: EXIT.NOINPUT,
  EACCES: EXIT.NOPERM,
  EPERM: EXIT.NOPERM,
  EADDRINUSE: EXIT.UNAVAILABLE,
  EADDRNOTAVAIL: EXIT.UNAVAILABLE,
  ECONNREFUSED: EXIT.UNAVAILABLE,
  ENOTFOUND: EXIT.UNAVAILABLE,
  ETIMEDOUT: EXIT.UNAVAILABLE,
};

/**
 * The exit code for what a command threw: commander's usage errors 64 (its --help and --version 0),
 * a MailmeshError by its code or kind, a system error by its errno name, anything else 70.
 */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (err instanceof MailmeshError) {
    // A wrapped failure (INTERNAL around a system error) exits as what it wraps.
    if (err.code === 'INTERNAL' && err.cause !== undefined) return exitCodeFor(err.cause);
    return CODE_EXIT[err.code] ?? KIND_EXIT[err.kind];
  }
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  return (typeof errno === 'string' && ERRNO_EXIT[errno]) || EXIT.SOFTWARE;
}

/** A usage error found after commander parsed the line (a missing file or --ldap, say): exits 64. */
export function usageError(message: string): CommanderError {
  return new CommanderError(EXIT.USAGE, 'mailmesh.usage', message);
}

/**
 * What the CLI prints for a failure: `CODE: message` for ours, the message of a system error
 * (it names its errno), nothing for commander's own usage errors (it printed them, with help).
 */
export function failureText(err: unknown): string | undefined {
  if (err instanceof CommanderError) return err.code === 'mailmesh.usage' ? err.message : undefined;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (!(err instanceof MailmeshError) && typeof errno === 'string' && err instanceof Error) return err.message;
  const e = asMailmeshError(err);
  return `${e.code}: ${e.message}`;
}
