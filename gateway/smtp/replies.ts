import { CATALOGUE, type ErrorCode, type ErrorKind, MailmeshError } from '../errors.js';
import { replyText, type Reply } from './client.js';

/**
 * The SMTP replies of the gateway, one table keyed by the error catalogue's codes
 * (docs/architecture.md "Conventions" 5: protocol codes are attached at the edge). Each entry
 * is a reply code (RFC 5321 §4.2), an enhanced status code (RFC 3463 §2, class.subject.detail)
 * and a text. A text may name `{slots}` filled by our own code (a domain name, a key ID, the
 * reason a policy composed); a library's error message never goes into a reply, only into the
 * log. docs/smtp.md "Replies the upstream can get from us" lists them by situation.
 */

export interface ReplySpec {
  /** RFC 5321 §4.2.2 reply code: 4yz transient, 5yz permanent. */
  code: number;
  /** RFC 3463 §2 enhanced status code; its class is the reply code's first digit. */
  status: string;
  /** The text after the enhanced code; `{name}` is filled from the reply's values. */
  text: string;
}

const LOCAL_ERROR: ReplySpec = { code: 451, status: '4.3.0', text: 'Local error in processing, try again later' };

export const SMTP_REPLIES: { readonly [C in ErrorCode]?: ReplySpec } = {
  // RCPT (RFC 5321 §3.3): the recipient's direction, route and next hop.
  RELAY_DENIED: { code: 550, status: '5.7.1', text: 'Relaying denied' },
  // RFC 5321 §4.5.3.1.10: 452 for a recipient the transaction cannot take; the client retries it later.
  ROUTE_OTHER: { code: 452, status: '4.5.3', text: 'Too many recipients for this transaction (another route); send the rest in a new one' },
  ADDRESS_INVALID: { code: 501, status: '5.1.3', text: 'Bad recipient address syntax' },
  DOMAIN_NO_MAIL: { code: 550, status: '5.1.2', text: 'The recipient domain accepts no mail' },
  ROUTING_FAILED: { code: 451, status: '4.4.3', text: 'Routing failure, try again later' },
  NEXT_HOP_UNAVAILABLE: { code: 451, status: '4.4.1', text: 'Next hop unreachable, try again later' },
  NEXT_HOP_LOST: { code: 451, status: '4.4.2', text: 'Next hop connection lost, try again later' },
  // RFC 6531 §3.4: a SMTPUTF8 message must not go to a server without SMTPUTF8.
  NEXT_HOP_NO_SMTPUTF8: { code: 550, status: '5.6.7', text: 'The next hop does not support SMTPUTF8' },
  // The routing policy (gateway/gateway.ts MailPolicy) at RCPT time.
  STORE_UNAVAILABLE: { code: 451, status: '4.3.0', text: 'The key store is unavailable, try again later' },
  LOOKUP_UNAVAILABLE: { code: 451, status: '4.4.3', text: 'Key discovery for {domain} failed, try again later' },
  KEY_TRUST_PENDING: { code: 451, status: '4.4.3', text: 'No authenticated key for {domain} yet (a source is unreachable), try again later' },
  // RFC 3463 §3.8 X.7.5: the peer's keys are in a revocation; the upstream keeps the message.
  PEER_KEYS_PENDING: { code: 451, status: '4.7.5', text: '{domain} revoked its keys and no new key is confirmed yet, try again later' },
  ENCRYPTION_REQUIRED: { code: 550, status: '5.7.1', text: 'Encryption to {domain} is required and not possible: {why}' },
  WEBMAIL_NOT_CONFIGURED: { code: 451, status: '4.3.5', text: 'WebMail fallback is not configured' },
  // Inbound tunnel messages (gateway/inbound.ts; docs/security/authenticity.md). RFC 3463 §3.8 X.7.5:
  // a cryptographic failure. One reply for every way of failing to decrypt and authenticate (no oracle).
  TUNNEL_UNAUTHENTICATED: { code: 554, status: '5.7.5', text: 'The tunnel message cannot be decrypted and authenticated (TUNNEL_UNAUTHENTICATED)' },
  // Refused before any decryption: encrypted to keys we do not hold (the reason names them), or not encrypted.
  TUNNEL_NO_KEY: { code: 554, status: '5.7.5', text: 'The tunnel message is {reason} (TUNNEL_NO_KEY)' },
  TUNNEL_NOT_FOR_US: { code: 554, status: '5.7.5', text: 'The tunnel message is {reason} (TUNNEL_NOT_FOR_US)' },
  TUNNEL_MALFORMED: { code: 554, status: '5.7.5', text: 'The tunnel message is {reason} (TUNNEL_MALFORMED)' },
  AUTHOR_MISMATCH: { code: 550, status: '5.7.1', text: 'Tunnel message refused: signed by {signer}, not by {whose} (AUTHOR_MISMATCH)' },
  SIGNATURE_INVALID: { code: 550, status: '5.7.1', text: 'Tunnel message refused: signature {signature}' },
  // Temporary: the key change may not have reached the directories yet; the upstream's retry then passes.
  KEY_CHANGED: { code: 451, status: '4.7.5', text: 'Tunnel message refused: signed by {key}, which is none of the current, next or previous keys of {author} (KEY_CHANGED)' },
  // DATA (RFC 5321 §4.1.1.4) and the message.
  MESSAGE_TOO_BIG: { code: 552, status: '5.3.4', text: 'Message too big' },
  // RFC 5321 §6.3: too many Received headers is a loop.
  MAIL_LOOP: { code: 554, status: '5.4.6', text: 'Mail loop detected (too many Received headers)' },
  ENCRYPTION_REQUESTED: { code: 554, status: '5.7.1', text: 'The message asks for encryption, but {reason}' },
  PROCESS_TIMEOUT: LOCAL_ERROR,
  INTERNAL: LOCAL_ERROR,
  // The session (RFC 5321 §4.2.2 "line too long"; §3.8, §4.3.2 421 and close).
  COMMAND_TOO_LONG: { code: 500, status: '5.5.2', text: 'Line too long' },
  TOO_MANY_CONNECTIONS: { code: 421, status: '4.7.0', text: '{name} Too many connections{scope}, try again later' },
};

/** Codes without an entry of their own get the reply of their kind; its text is the catalogue's. */
const BY_KIND: Record<ErrorKind, ReplySpec> = {
  invalid: { code: 554, status: '5.6.0', text: '' },
  forbidden: { code: 550, status: '5.7.1', text: '' },
  not_found: { code: 550, status: '5.1.1', text: '' },
  conflict: LOCAL_ERROR,
  unavailable: LOCAL_ERROR,
  internal: LOCAL_ERROR,
};

/** The reply code, enhanced status code and text (slots not yet filled) for an error code. */
export function replySpec(code: ErrorCode): ReplySpec {
  const own = SMTP_REPLIES[code];
  if (own) return own;
  const entry = CATALOGUE[code];
  const base = BY_KIND[entry.kind];
  if (base.text) return base;
  return { ...base, text: entry.message.charAt(0).toUpperCase() + entry.message.slice(1) };
}

/**
 * The SMTP reply for an error (or its code), with `values` in the text's slots; a slot without
 * a value stays empty. A MailmeshError's detail is not shown: it may carry a library's message.
 */
export function smtpReply(error: MailmeshError | ErrorCode, values: Readonly<Record<string, string>> = {}): Reply {
  const spec = replySpec(error instanceof MailmeshError ? error.code : error);
  const text = spec.text.replace(/\{(\w+)\}/g, (_, k: string) => values[k] ?? '');
  return { code: spec.code, lines: [`${spec.status} ${text}`] };
}

/** The same reply as a transient failure (RFC 3463 §3: class 4): the sender keeps the message and tries again. */
export function deferred(reply: Reply): Reply {
  return { code: 451, lines: reply.lines.map((l, i) => (i === 0 ? l.replace(/^5\./, '4.') : l)) };
}

/**
 * Thrown by process() to refuse a message with a reply of its own (e.g. `554 5.7.5` for a
 * tunnel message that does not decrypt); anything else process() throws is a 451.
 */
export class MessageRefused extends Error {
  constructor(readonly reply: Reply) {
    super(replyText(reply));
  }
}

/** A reply we give upstream: smtp-server sends `responseCode` and the text (with its enhanced code). */
export class SmtpReplyError extends Error {
  constructor(
    readonly responseCode: number,
    text: string,
  ) {
    super(text);
  }
}

/** Longest reply text passed on upstream (and logged per recipient). */
export const TEXT_MAX = 400;

/** A reply (ours or a next hop's) as the error smtp-server sends upstream. */
export function passOn(r: Reply): SmtpReplyError {
  // A next hop's 421 closes *its* session; passed on as is it would close the upstream's too (RFC 5321 §3.8).
  return new SmtpReplyError(r.code === 421 ? 451 : r.code, replyText(r).slice(0, TEXT_MAX) || 'Error');
}
