/**
 * The gateway's error catalogue: its codes on the base of directory/errors.ts (the same
 * MailmeshError, kinds, isMailmeshError and asMailmeshError), registered when this module is
 * loaded. Gateway modules import their errors from here, so a gateway code is always registered
 * before it is thrown; the directory core never names these codes. The rule of what a client is
 * shown is the base's (directory/errors.ts): the code and the catalogue's text; the detail goes to
 * the log unless the code is `public`.
 */
import { registerCodes, type ErrorEntry } from '../directory/errors.js';

export { asMailmeshError, CATALOGUE, isMailmeshError, MailmeshError, type ErrorCode, type ErrorKind } from '../directory/errors.js';

const GATEWAY_CODES = {
  // The tunnel (gateway/tunnel, gateway/inbound.ts).
  TUNNEL_MALFORMED: { kind: 'invalid', message: 'the tunnel message is malformed' },
  TUNNEL_UNSUPPORTED: { kind: 'invalid', message: 'the tunnel message uses an unsupported format or algorithm' },
  TUNNEL_NOT_FOR_US: { kind: 'invalid', message: 'the tunnel message is not encrypted to this domain key' },
  TUNNEL_DECRYPT_FAILED: { kind: 'invalid', message: 'the tunnel message cannot be decrypted' },
  TUNNEL_UNAUTHENTICATED: { kind: 'invalid', message: 'the tunnel message cannot be decrypted and authenticated' },
  AUTHOR_MISMATCH: { kind: 'forbidden', message: 'the message is signed by a domain that is not its author domain (From)' },
  TUNNEL_WEAK_ALGORITHM: { kind: 'invalid', message: 'the tunnel message uses a weak algorithm (3DES, RC2, DES, RSA under 2048 bits, MD5 or SHA-1 signatures) that is refused' },
  KEY_CHANGED: { kind: 'forbidden', message: "the message is signed by a key that is none of the sender domain's current, next or retained keys" },
  // The SMTP relay and its next hop (gateway/smtp).
  NEXT_HOP_UNAVAILABLE: { kind: 'unavailable', message: 'the next-hop mail server is unreachable' },
  NEXT_HOP_TIMEOUT: { kind: 'unavailable', message: 'the next-hop mail server did not answer in time' },
  NEXT_HOP_PROTOCOL: { kind: 'unavailable', message: 'the next-hop mail server broke the SMTP protocol' },
  NEXT_HOP_TLS: { kind: 'unavailable', message: 'TLS to the next-hop mail server failed or is not offered' },
  NEXT_HOP_REFUSED: { kind: 'unavailable', message: 'the next-hop mail server refused the session' },
  PROCESS_TIMEOUT: { kind: 'unavailable', message: 'processing the message took too long' },
  // Situations of the SMTP gateway that have a reply of their own (gateway/smtp/replies.ts).
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
  // Enhanced WebMail (gateway/webmail).
  WEBMAIL_INVALID: { kind: 'invalid', message: 'the secure message cannot be opened (damaged, altered or not for this address)' },
  WEBMAIL_EXPIRED: { kind: 'forbidden', message: 'the secure message has expired' },
  WEBMAIL_SESSION: { kind: 'forbidden', message: 'the session has expired or does not belong to this message; open the message again' },
  WEBMAIL_CSRF: { kind: 'forbidden', message: 'the form is not valid for this session; open the message again' },
  WEBMAIL_PASSWORD: { kind: 'forbidden', message: 'wrong password' },
  WEBMAIL_WEAK_PASSWORD: { kind: 'invalid', message: 'the password does not meet the rules', public: true },
  WEBMAIL_REGISTERED: { kind: 'conflict', message: 'this address is already registered' },
  WEBMAIL_LOCKED: { kind: 'forbidden', message: 'too many wrong passwords: locked for a while' },
  WEBMAIL_HASH_UNSUPPORTED: { kind: 'internal', message: 'the stored password hash cannot be used (malformed or outside the accepted scrypt parameters); an operator can reset the registration' },
} as const satisfies Record<string, ErrorEntry>;

type GatewayCodes = typeof GATEWAY_CODES;

declare module '../directory/errors.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- declaration merging
  interface ErrorCatalogue extends GatewayCodes {}
}

registerCodes(GATEWAY_CODES);
