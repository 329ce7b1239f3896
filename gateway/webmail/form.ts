import type { FastifyInstance } from 'fastify';
import { parseAddress } from '../../directory/domain.js';
import { MailmeshError } from '../errors.js';
import type { SealedMessage } from './crypto.js';

/** The longest recipient and Message-ID a form may carry. */
export const FIELD_MAX = 1000;
/** The longest secure reply (UTF-16 code units, as a browser's textarea `maxlength` counts). */
export const REPLY_MAX = 100_000;
/** Room for every field but the sealed message: the reply (≤ 9 bytes per code unit encoded), password, tokens. */
const OTHER_FIELDS = 1024 * 1024;
/** The sealed message's own bytes around the mail (crypto.ts: header 77, tag 16). */
const SEAL_OVERHEAD = 93;

/**
 * The form body limit of the WebMail routes for mail up to `maxMessageBytes`: the sealed message
 * as base64 (RFC 4648 §4, 4 characters per 3 bytes), form-encoded (WHATWG URL §5.2: `+`, `/`, `=`
 * become three bytes; of random base64 about 1 in 32 characters, allowed 1 in 16), plus the other fields.
 */
export function formLimit(maxMessageBytes: number): number {
  const base64 = 4 * Math.ceil((maxMessageBytes + SEAL_OVERHEAD) / 3);
  return Math.ceil(base64 * (1 + 2 / 16)) + OTHER_FIELDS;
}

/** More fields than any WebMail form has (it has at most nine) are refused. */
export const FORM_FIELDS_MAX = 64;

const isHex = (c: number) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
const hexValue = (c: number) => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);

/** WHATWG URL §5.1 steps 3.4-3.5: `+` is a space, then percent-decode (RFC 3986 §2.1) and UTF-8 decode without failure. */
function formDecode(s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s;
  const bytes = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x2b) out[n++] = 0x20;
    else if (b === 0x25 && i + 2 < bytes.length && isHex(bytes[i + 1]!) && isHex(bytes[i + 2]!)) {
      out[n++] = (hexValue(bytes[i + 1]!) << 4) | hexValue(bytes[i + 2]!);
      i += 2;
    } else out[n++] = b;
  }
  return out.toString('utf8', 0, n);
}

/**
 * WHATWG URL §5.1 application/x-www-form-urlencoded parsing, in one pass (what URLSearchParams
 * gives, without its slow path on long runs of `+`); a repeated name keeps its last value; more
 * than FORM_FIELDS_MAX fields are BAD_REQUEST. The object has no prototype.
 */
export function parseForm(body: string): Record<string, string> {
  const form = Object.create(null) as Record<string, string>;
  let fields = 0;
  for (let start = 0; start <= body.length; ) {
    let end = body.indexOf('&', start);
    if (end < 0) end = body.length;
    if (end > start) {
      if (++fields > FORM_FIELDS_MAX) throw new MailmeshError('BAD_REQUEST', `more than ${FORM_FIELDS_MAX} form fields`);
      const eq = body.indexOf('=', start);
      const cut = eq >= 0 && eq < end ? eq : end;
      form[formDecode(body.slice(start, cut))] = formDecode(body.slice(Math.min(cut + 1, end), end));
    }
    start = end + 1;
  }
  return form;
}

/**
 * HTML form bodies (WHATWG URL §5.1 application/x-www-form-urlencoded) up to `bodyLimit`, for the
 * routes of `scope` only: http.ts calls this inside the WebMail operations' own fastify context.
 */
export function registerFormParser(scope: FastifyInstance, bodyLimit: number): void {
  scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseForm(body as string));
    } catch (e) {
      done(e as Error);
    }
  });
}

/** An address as WebMail keys it: the local part lower-cased (one registration per mailbox in practice), the domain normalised. */
export function normalAddress(s: string): string {
  const a = parseAddress(s);
  return `${a.local.toLowerCase()}@${a.domain}`;
}

/** The sealed message from the form fields; shape errors are WEBMAIL_INVALID. */
export function sealedFrom(form: Record<string, string>): SealedMessage {
  const { recipient, messageId, expires, data } = form;
  if (!recipient || !messageId || !expires || !data || recipient.length > FIELD_MAX || messageId.length > FIELD_MAX || !/^\d{1,12}$/.test(expires) || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
    throw new MailmeshError('WEBMAIL_INVALID', 'missing or malformed fields');
  }
  let address: string;
  try {
    address = normalAddress(recipient);
  } catch {
    throw new MailmeshError('WEBMAIL_INVALID', 'bad recipient');
  }
  return { recipient: address, messageId, expires: Number(expires), data };
}
