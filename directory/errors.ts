/**
 * The error catalogue: every failure mailmesh reports has a stable code.
 * Protocol codes (HTTP status, SMTP reply, LDAP result, DNS rcode) are attached
 * at the edges from `kind`; clients see `message`, logs also see `detail`.
 */
export type ErrorKind = 'invalid' | 'not_found' | 'conflict' | 'forbidden' | 'unavailable' | 'internal';

export const CATALOGUE = {
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
  BAD_REQUEST: { kind: 'invalid', message: 'the request is malformed' },
  BODY_TOO_LARGE: { kind: 'invalid', message: 'the request body is too large' },
  BODY_ENCODING: { kind: 'invalid', message: 'the request body is not valid UTF-8' },
  BODY_TOO_DEEP: { kind: 'invalid', message: 'the request body is nested too deeply' },
  MEDIA_TYPE_UNSUPPORTED: { kind: 'invalid', message: 'the request body has an unsupported media type or charset' },
  TOO_MANY_CONNECTIONS: { kind: 'unavailable', message: 'too many connections from this address or in total; try again later' },
  DNS_MALFORMED: { kind: 'invalid', message: 'the DNS message is malformed' },
  TUNNEL_MALFORMED: { kind: 'invalid', message: 'the tunnel message is malformed' },
  TUNNEL_UNSUPPORTED: { kind: 'invalid', message: 'the tunnel message uses an unsupported format or algorithm' },
  TUNNEL_NOT_FOR_US: { kind: 'invalid', message: 'the tunnel message is not encrypted to this domain key' },
  TUNNEL_DECRYPT_FAILED: { kind: 'invalid', message: 'the tunnel message cannot be decrypted' },
  TUNNEL_NO_KEY: { kind: 'invalid', message: 'no domain key for this tunnel format' },
  TUNNEL_UNAUTHENTICATED: { kind: 'invalid', message: 'the tunnel message cannot be decrypted and authenticated' },
  AUTHOR_MISMATCH: { kind: 'forbidden', message: 'the message is signed by a domain that is not its author domain (From)' },
  TUNNEL_WEAK_ALGORITHM: { kind: 'invalid', message: 'the tunnel message uses a weak algorithm (3DES, RC2, DES, RSA under 2048 bits, MD5 or SHA-1 signatures) that is refused' },
  NOT_FOUND: { kind: 'not_found', message: 'not found' },
  RATE_LIMITED: { kind: 'unavailable', message: 'too many requests' },
  NEXT_HOP_UNAVAILABLE: { kind: 'unavailable', message: 'the next-hop mail server is unreachable' },
  NEXT_HOP_TIMEOUT: { kind: 'unavailable', message: 'the next-hop mail server did not answer in time' },
  NEXT_HOP_PROTOCOL: { kind: 'unavailable', message: 'the next-hop mail server broke the SMTP protocol' },
  NEXT_HOP_TLS: { kind: 'unavailable', message: 'TLS to the next-hop mail server failed or is not offered' },
  NEXT_HOP_REFUSED: { kind: 'unavailable', message: 'the next-hop mail server refused the session' },
  PROCESS_TIMEOUT: { kind: 'unavailable', message: 'processing the message took too long' },
  SIGNED_RECORD_MALFORMED: { kind: 'invalid', message: 'the signed record or statement is malformed' },
  SIGNATURE_INVALID: { kind: 'forbidden', message: 'the signature does not verify with the domain key' },
  PROOF_MISSING: { kind: 'forbidden', message: 'no proof of domain control: no _mailmesh TXT record and no well-known record' },
  PIN_MISMATCH: { kind: 'forbidden', message: 'the _mailmesh TXT record pins a different key' },
  DOMAIN_HELD: { kind: 'conflict', message: 'the domain is held by another key (a key change needs a rollover signed by the old key)' },
  ROLL_IN_PROGRESS: { kind: 'conflict', message: 'a key roll is already announced for this domain; finish it first (mailmesh domain roll --finish)' },
  ROLL_NOT_ANNOUNCED: { kind: 'conflict', message: 'no key roll is announced for this domain (mailmesh domain roll <domain>)' },
  ROLL_TOO_EARLY: { kind: 'conflict', message: 'the overlap of the key roll has not ended yet (or use --now)' },
  ROLL_PROOF_MISSING: { kind: 'forbidden', message: "the domain's _mailmesh TXT does not name the next key yet; publish it before the switch" },
  RECOVERY_PENDING: { kind: 'conflict', message: 'a key recovery for this domain waits for its hold-down' },
  RECOVERY_VETOED: { kind: 'forbidden', message: 'the key recovery was vetoed by the holder of the current key' },
  KEY_CHANGED: { kind: 'forbidden', message: "the message is signed by a key that is none of the sender domain's current, next or retained keys" },
  PIN_VIOLATION: { kind: 'conflict', message: 'the key changed without a rollover or a signature by the pinned key' },
  TRUST_ANCHOR_UNKNOWN: { kind: 'invalid', message: 'the certificate chain does not lead to a configured trust anchor' },
  ADDRESS_FORBIDDEN: { kind: 'forbidden', message: 'the host resolves to a private, loopback or other special-purpose address' },
  LOOKUP_UNAVAILABLE: { kind: 'unavailable', message: 'no discovery source could be reached' },
  FEDERATION_DISABLED: { kind: 'forbidden', message: 'this operation is not enabled on this directory' },
  UNAUTHORIZED: { kind: 'forbidden', message: 'a valid bearer token is needed' },
  WEBMAIL_INVALID: { kind: 'invalid', message: 'the secure message cannot be opened (damaged, altered or not for this address)' },
  WEBMAIL_EXPIRED: { kind: 'forbidden', message: 'the secure message has expired' },
  WEBMAIL_SESSION: { kind: 'forbidden', message: 'the session has expired or does not belong to this message; open the message again' },
  WEBMAIL_CSRF: { kind: 'forbidden', message: 'the form is not valid for this session; open the message again' },
  WEBMAIL_PASSWORD: { kind: 'forbidden', message: 'wrong password' },
  WEBMAIL_WEAK_PASSWORD: { kind: 'invalid', message: 'the password does not meet the rules' },
  WEBMAIL_REGISTERED: { kind: 'conflict', message: 'this address is already registered' },
  WEBMAIL_LOCKED: { kind: 'forbidden', message: 'too many wrong passwords: locked for a while' },
  WEBMAIL_HASH_UNSUPPORTED: { kind: 'internal', message: 'the stored password hash cannot be used (malformed or outside the accepted scrypt parameters); an operator can reset the registration' },
  // gateway SMTP replies: situations of the SMTP gateway that have a reply of their own (gateway/smtp/replies.ts)
  RELAY_DENIED: { kind: 'forbidden', message: 'relaying to this domain is not allowed from this address' },
  ROUTE_OTHER: { kind: 'unavailable', message: 'the recipient needs another route than the transaction; send it in a new one' },
  ROUTING_FAILED: { kind: 'unavailable', message: 'routing the recipient domain failed' },
  DOMAIN_NO_MAIL: { kind: 'not_found', message: 'the recipient domain accepts no mail' },
  NEXT_HOP_LOST: { kind: 'unavailable', message: 'the connection to the next-hop mail server was lost' },
  NEXT_HOP_NO_SMTPUTF8: { kind: 'invalid', message: 'the next-hop mail server does not support SMTPUTF8' },
  MESSAGE_TOO_BIG: { kind: 'invalid', message: 'the message is larger than the size limit' },
  MAIL_LOOP: { kind: 'invalid', message: 'the message has too many Received headers (a mail loop)' },
  COMMAND_TOO_LONG: { kind: 'invalid', message: 'the SMTP command line is too long' },
  KEY_TRUST_PENDING: { kind: 'unavailable', message: 'no authenticated key for the domain yet (a source is unreachable)' },
  PEER_KEYS_PENDING: { kind: 'unavailable', message: 'the domain revoked its keys and no new key is confirmed yet' },
  ENCRYPTION_REQUIRED: { kind: 'forbidden', message: 'encryption to the domain is required and not possible' },
  ENCRYPTION_REQUESTED: { kind: 'forbidden', message: 'the message asks for encryption, which is not possible' },
  WEBMAIL_NOT_CONFIGURED: { kind: 'unavailable', message: 'the WebMail fallback is not configured' },
  INTERNAL: { kind: 'internal', message: 'internal error' },
} as const satisfies Record<string, { kind: ErrorKind; message: string }>;

export type ErrorCode = keyof typeof CATALOGUE;

export class MailmeshError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  /** Detail for logs and operators; never more sensitive than the input that caused it. */
  readonly detail?: string;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const entry = CATALOGUE[code];
    super(detail ? `${entry.message}: ${detail}` : entry.message, options);
    this.name = 'MailmeshError';
    this.code = code;
    this.kind = entry.kind;
    this.detail = detail;
  }

  /** The generic text a remote client is shown. */
  get publicMessage(): string {
    return this.kind === 'internal' ? CATALOGUE.INTERNAL.message : this.message;
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
