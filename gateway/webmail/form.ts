import type { FastifyInstance } from 'fastify';
import { parseAddress } from '../../directory/domain.js';
import { MailmeshError } from '../../directory/errors.js';
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

/**
 * HTML form bodies (WHATWG URL §5.1 application/x-www-form-urlencoded) up to `bodyLimit`, for the
 * routes of `scope` only: http.ts calls this inside the WebMail operations' own fastify context.
 * URLSearchParams parses in one pass; a repeated name keeps its last value.
 */
export function registerFormParser(scope: FastifyInstance, bodyLimit: number): void {
  scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
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
