/**
 * The error catalogue: every failure mailmesh reports has a stable code. Protocol codes (HTTP
 * status, SMTP reply, LDAP result, DNS rcode) are attached at the edges from `kind`.
 *
 * What a remote client is shown, at every edge (docs/http.md "Errors"):
 * - the code and the catalogue's text (`publicMessage`), never `detail`: a detail may hold a
 *   library's message, a host's answer or the store's state;
 * - the detail goes to the log next to a request ID, and the reply carries that ID (HTTP:
 *   `error.requestId` and `X-Request-Id`, the log's `reqId`);
 * - except the codes marked `public: true`, whose every detail our own code composes from public
 *   data (this directory's published records, fixed texts) and says the way out (DOMAIN_HELD
 *   names the key that holds the domain). Never mark a code public that a library's message or
 *   anything read from another host can reach.
 * The CLI is the operator: it prints `message` (the text and the detail).
 *
 * This file is the base and the directory's codes. Other catalogues (gateway/errors.ts) share the
 * base: they add their codes to the `ErrorCatalogue` interface (declaration merging) and register
 * them when their module is loaded (`registerCodes`); a code that no loaded module registered
 * cannot be constructed (a TypeError names it).
 */
export type ErrorKind = 'invalid' | 'not_found' | 'conflict' | 'forbidden' | 'unavailable' | 'internal';

/** One code's entry: its kind, the text clients see, and whether its detail is public (see above). */
export interface ErrorEntry {
  readonly kind: ErrorKind;
  readonly message: string;
  readonly public?: true;
}

const DIRECTORY_CODES = {
  CONFIG_INVALID: { kind: 'invalid', message: 'the configuration is invalid' },
  DOMAIN_INVALID: { kind: 'invalid', message: 'not a valid domain name' },
  ADDRESS_INVALID: { kind: 'invalid', message: 'not a valid mail address' },
  DOMAIN_NOT_FOUND: { kind: 'not_found', message: 'no such member domain' },
  DOMAIN_EXISTS: { kind: 'conflict', message: 'the domain already exists' },
  KEY_UNREADABLE: { kind: 'invalid', message: 'the key material cannot be read' },
  KEY_WRONG_DOMAIN: { kind: 'invalid', message: 'the key does not belong to the domain' },
  KEY_EXPIRED: { kind: 'invalid', message: 'the key or certificate has expired' },
  KEY_NOT_YET_VALID: { kind: 'invalid', message: 'the certificate is not valid yet' },
  KEY_REVOKED: { kind: 'invalid', message: 'the key has been revoked' },
  KEY_TOO_WEAK: { kind: 'invalid', message: 'the key is too weak' },
  KEY_NO_ENCRYPTION: { kind: 'invalid', message: 'the key has no encryption-capable (sub)key' },
  KEY_USAGE: { kind: 'invalid', message: 'the certificate is not allowed for e-mail protection' },
  CHAIN_INVALID: { kind: 'invalid', message: 'the certificate chain does not verify' },
  CHAIN_UNRELATED: { kind: 'invalid', message: 'the file holds certificates that are not on the path from the domain certificate to a trust anchor' },
  MASTER_KEY_MISMATCH: {
    kind: 'forbidden',
    message: 'the master key does not open this store (wrong key file or MAILMESH_MASTER_KEY)',
  },
  MASTER_KEY_INVALID: { kind: 'invalid', message: 'the master key must be 32 bytes, base64 or hex encoded' },
  SEALED_DATA_CORRUPT: { kind: 'internal', message: 'sealed data cannot be opened' },
  SERIAL_CONFLICT: { kind: 'conflict', message: 'the record was changed concurrently; retry' },
  STORE_UNAVAILABLE: { kind: 'unavailable', message: 'the store is unreachable' },
  CLUSTER_BUNDLE_INVALID: { kind: 'invalid', message: 'not a mailmesh cluster bundle' },
  CLUSTER_BUNDLE_DECRYPT: { kind: 'invalid', message: 'the cluster bundle does not decrypt: wrong passphrase, or it was altered' },
  CLUSTER_BUNDLE_MISMATCH: { kind: 'conflict', message: 'the cluster bundle belongs to another cluster: the store holds other keys' },
  STORE_SCHEMA_NEWER: { kind: 'invalid', message: 'the store was written by a newer mailmesh; this code does not know its schema' },
  STORE_SCHEMA_INVALID: { kind: 'invalid', message: 'the store\'s schema version marker is not a version' },
  STORE_MIGRATION_BUSY: { kind: 'unavailable', message: 'another node is migrating the store; try again later' },
  STORE_NOT_EMPTY: { kind: 'conflict', message: 'the store is not empty (restore --force replaces what it holds)' },
  BACKUP_INVALID: { kind: 'invalid', message: 'not a mailmesh backup bundle' },
  BACKUP_DECRYPT: { kind: 'forbidden', message: 'the backup bundle does not decrypt: wrong passphrase, or it was altered' },
  BACKUP_KEY_MISMATCH: { kind: 'forbidden', message: 'this node has another master key than the backup\'s' },
  BACKUP_WEAK_PASSPHRASE: { kind: 'invalid', message: 'the backup passphrase is too short: the bundle carries the master key' },
  RESTORE_INCOMPLETE: { kind: 'unavailable', message: 'the restore stopped part way: the store holds part of the backup' },
  BAD_REQUEST: { kind: 'invalid', message: 'the request is malformed' },
  BODY_TOO_LARGE: { kind: 'invalid', message: 'the request body is too large' },
  BODY_ENCODING: { kind: 'invalid', message: 'the request body is not valid UTF-8' },
  BODY_TOO_DEEP: { kind: 'invalid', message: 'the request body is nested too deeply' },
  MEDIA_TYPE_UNSUPPORTED: { kind: 'invalid', message: 'the request body has an unsupported media type or charset' },
  TOO_MANY_CONNECTIONS: { kind: 'unavailable', message: 'too many connections from this address or in total; try again later' },
  DNS_MALFORMED: { kind: 'invalid', message: 'the DNS message is malformed' },
  // Also the directory's own: a domain without the private key of a format (directory.ts, lifecycle.ts).
  TUNNEL_NO_KEY: { kind: 'invalid', message: 'no domain key for this tunnel format' },
  NOT_FOUND: { kind: 'not_found', message: 'not found' },
  RATE_LIMITED: { kind: 'unavailable', message: 'too many requests' },
  SIGNED_RECORD_MALFORMED: { kind: 'invalid', message: 'the signed record or statement is malformed' },
  SIGNATURE_INVALID: { kind: 'forbidden', message: 'the signature does not verify with the domain key' },
  PROOF_MISSING: { kind: 'forbidden', message: 'no proof of domain control: no _mailmesh TXT record and no well-known record' },
  PIN_MISMATCH: { kind: 'forbidden', message: 'the _mailmesh TXT record pins a different key' },
  DOMAIN_HELD: { kind: 'conflict', message: 'the domain is held by another key (a key change needs a rollover signed by the old key)', public: true },
  ROLL_IN_PROGRESS: { kind: 'conflict', message: 'a key roll is already announced for this domain; finish it first (mailmesh domain roll --finish)' },
  ROLL_NOT_ANNOUNCED: { kind: 'conflict', message: 'no key roll is announced for this domain (mailmesh domain roll <domain>)' },
  ROLL_TOO_EARLY: { kind: 'conflict', message: 'the overlap of the key roll has not ended yet (or use --now)' },
  ROLL_PROOF_MISSING: { kind: 'forbidden', message: "the domain's _mailmesh TXT does not name the next key yet; publish it before the switch" },
  RECOVERY_PENDING: { kind: 'conflict', message: 'a key recovery for this domain waits for its hold-down' },
  RECOVERY_VETOED: { kind: 'forbidden', message: 'the key recovery was vetoed by the holder of the current key', public: true },
  PIN_VIOLATION: { kind: 'conflict', message: 'the key changed without a rollover or a signature by the pinned key' },
  TRUST_ANCHOR_UNKNOWN: { kind: 'invalid', message: 'the certificate chain does not lead to a configured trust anchor' },
  ADDRESS_FORBIDDEN: { kind: 'forbidden', message: 'the host resolves to a private, loopback or other special-purpose address' },
  LOOKUP_UNAVAILABLE: { kind: 'unavailable', message: 'no discovery source could be reached' },
  FEDERATION_DISABLED: { kind: 'forbidden', message: 'this operation is not enabled on this directory' },
  UNAUTHORIZED: { kind: 'forbidden', message: 'a valid bearer token is needed' },
  LISTEN_FAILED: { kind: 'unavailable', message: 'a face cannot listen on its address' },
  INTERNAL: { kind: 'internal', message: 'internal error' },
  TLOG_INVALID: { kind: 'invalid', message: 'the transparency log data (note, checkpoint, tile or proof request) is malformed' },
  TLOG_PROOF_FAILED: { kind: 'forbidden', message: 'the transparency log proof does not verify' },
  // The transparency log (docs/transparency.md).
  TLOG_ENTRY_TOO_LARGE: { kind: 'invalid', message: 'the record is too large for the transparency log (65,535 bytes at most)' },
  TLOG_HASH_MISSING: { kind: 'internal', message: 'the transparency log lacks a hash it should hold' },
  TLOG_SIZE_INVALID: { kind: 'invalid', message: 'the tree sizes are not those of this transparency log (0 < old <= new <= size)' },
  TLOG_DISABLED: { kind: 'not_found', message: 'this directory keeps no transparency log' },
} as const satisfies Record<string, ErrorEntry>;

type DirectoryCodes = typeof DIRECTORY_CODES;

/** Every code with its entry; gateway/errors.ts merges its own codes into this interface. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- extended by declaration merging
export interface ErrorCatalogue extends DirectoryCodes {}

export type ErrorCode = keyof ErrorCatalogue & string;

/**
 * The codes registered so far (a null prototype: `code in CATALOGUE` is true for codes only). Typed
 * with every catalogue; at run time a catalogue's codes are here once its module is loaded.
 */
export const CATALOGUE: Readonly<ErrorCatalogue> = Object.assign(Object.create(null) as ErrorCatalogue, DIRECTORY_CODES);

/** Adds a catalogue's codes (at its module's load); a code registered twice is a programming error. */
export function registerCodes(codes: Record<string, ErrorEntry>): void {
  const taken = Object.keys(codes).filter((c) => Object.hasOwn(CATALOGUE, c));
  if (taken.length) throw new TypeError(`error codes registered twice: ${taken.join(', ')}`);
  Object.assign(CATALOGUE, codes);
}

export class MailmeshError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  /** Detail for logs and operators; never more sensitive than the input that caused it. */
  readonly detail?: string;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    if (!Object.hasOwn(CATALOGUE, code)) throw new TypeError(`error code ${String(code)} is not registered (is its catalogue, e.g. gateway/errors.ts, imported?)`);
    const entry: ErrorEntry = CATALOGUE[code];
    super(detail ? `${entry.message}: ${detail}` : entry.message, options);
    this.name = 'MailmeshError';
    this.code = code;
    this.kind = entry.kind;
    this.detail = detail;
  }

  /** What a remote client is shown: the catalogue's text (INTERNAL's for a fault), with the detail only for a `public` code. */
  get publicMessage(): string {
    const entry: ErrorEntry = CATALOGUE[this.code];
    if (this.kind === 'internal') return CATALOGUE.INTERNAL.message;
    return entry.public ? this.message : entry.message;
  }
}

export function isMailmeshError(e: unknown, code?: ErrorCode): e is MailmeshError {
  return e instanceof MailmeshError && (code === undefined || e.code === code);
}

/** Wrap anything thrown into a MailmeshError, keeping stable ones as they are. */
export function asMailmeshError(e: unknown, fallback: ErrorCode = 'INTERNAL'): MailmeshError {
  if (e instanceof MailmeshError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  return new MailmeshError(fallback, detail, { cause: e });
}
