import { randomBytes } from 'node:crypto';
import { MailmeshError } from '../../directory/errors.js';
import { decodeEntities } from './sanitize.js';
import { decodeBody, encodeBase64Lines, fieldValue, makeBoundary, parseContentType, parseEntity, splitMultipart, type Entity } from '../tunnel/mime.js';

/** What the message page shows of a decrypted message. */
export interface Readable {
  from: string;
  to: string;
  subject: string;
  date: string;
  messageId: string;
  /** The text/plain part, or the text of the text/html part. */
  text: string;
  /** The text/html part (unsanitised: the page sanitises it, sanitize.ts). */
  html?: string;
  /** The sender asked for a signed receipt (`X-Mailmesh-Registered: yes`). */
  registered: boolean;
  attachments: { name: string; type: string; data: Buffer }[];
}

const MAX_DEPTH = 20;

/** RFC 2045 §6.7: quoted-printable (soft line breaks, =XX octets). */
export function decodeQuotedPrintable(body: Buffer): Buffer {
  const s = body.toString('latin1').replace(/[ \t]+(?=\r?\n)/g, '').replace(/=\r?\n/g, '');
  return Buffer.from(s.replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
}

function bodyOf(e: Entity): Buffer {
  const cte = (fieldValue(e.fields, 'content-transfer-encoding') ?? '').trim().toLowerCase();
  return cte === 'quoted-printable' ? decodeQuotedPrintable(e.body) : decodeBody(e);
}

function decodeCharset(data: Buffer, charset: string | undefined): string {
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(data);
  } catch {
    return new TextDecoder('utf-8').decode(data); // an unknown label: read as UTF-8, replacement characters where it does not fit
  }
}

/** RFC 2047 §4: encoded-words `=?charset?B|Q?text?=` in header values. */
export function decodeWords(value: string): string {
  return value.replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=(\s+(?==\?))?/g, (_m, cs: string, enc: string, text: string) => {
    const bytes = enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : decodeQuotedPrintable(Buffer.from(text.replace(/_/g, ' '), 'latin1'));
    return decodeCharset(bytes, cs.replace(/\*.*$/, ''));
  });
}

/** HTML to readable text: no markup survives (the page shows text only). */
export function htmlToText(html: string): string {
  const text = html
    .replace(/<(script|style|head)[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<br\s*\/?>|<\/(p|div|tr|li|h[1-6])\s*>/gi, '\n')
    .replace(/<[^>]*>/g, '');
  return decodeEntities(text).replace(/\n{3,}/g, '\n\n').trim();
}

/** RFC 2183 §2.3: the file name (Content-Disposition filename, else Content-Type name). */
function fileName(e: Entity, n: number): string {
  const disp = fieldValue(e.fields, 'content-disposition');
  const fromDisp = disp ? /filename\s*=\s*"?([^";]+)"?/i.exec(disp)?.[1] : undefined;
  const name = fromDisp ?? parseContentType(fieldValue(e.fields, 'content-type')).params.name;
  // Path separators and control characters (C0, DEL) never reach a file name.
  return [...decodeWords(name ?? `attachment-${n}`)].map((c) => (c === '/' || c === '\\' || c.charCodeAt(0) < 0x20 || c === '\x7f' ? '_' : c)).join('').slice(0, 200);
}

/** Reads a message (RFC 5322 + MIME, RFC 2045/2046) for display. Untrusted input: failures are WEBMAIL_INVALID. */
export function readMessage(message: Buffer): Readable {
  try {
    const top = parseEntity(message);
    const h = (n: string) => decodeWords(fieldValue(top.fields, n) ?? '');
    const out: Readable = { from: h('from'), to: h('to'), subject: h('subject'), date: h('date'), messageId: (fieldValue(top.fields, 'message-id') ?? '').trim(), text: '', attachments: [],
      registered: /^\s*(yes|true|1)\s*$/i.test(h('x-mailmesh-registered')) };
    let html: string | undefined;
    let plain: string | undefined;
    const walk = (e: Entity, depth: number) => {
      if (depth > MAX_DEPTH) throw new MailmeshError('WEBMAIL_INVALID', 'MIME nesting too deep');
      const ct = parseContentType(fieldValue(e.fields, 'content-type'));
      if (ct.type === 'multipart') {
        for (const p of splitMultipart(e.body, ct.params.boundary ?? '')) walk(parseEntity(p), depth + 1);
        return;
      }
      const attached = /^\s*attachment/i.test(fieldValue(e.fields, 'content-disposition') ?? '');
      if (!attached && ct.type === 'text' && ct.subtype === 'plain' && plain === undefined) plain = decodeCharset(bodyOf(e), ct.params.charset);
      else if (!attached && ct.type === 'text' && ct.subtype === 'html' && html === undefined) html = decodeCharset(bodyOf(e), ct.params.charset);
      else out.attachments.push({ name: fileName(e, out.attachments.length + 1), type: `${ct.type}/${ct.subtype}`, data: bodyOf(e) });
    };
    walk(top, 0);
    out.text = plain ?? (html !== undefined ? htmlToText(html) : '');
    if (html !== undefined) out.html = html;
    return out;
  } catch (e) {
    if (e instanceof MailmeshError && e.code === 'WEBMAIL_INVALID') throw e;
    throw new MailmeshError('WEBMAIL_INVALID', `unreadable message: ${(e as Error).message}`);
  }
}

/** The first address in a From/To value (RFC 5322 §3.4: `name <addr>` or a bare addr-spec). */
export function firstAddress(value: string): string | undefined {
  return /<([^<>\s]+@[^<>\s]+)>/.exec(value)?.[1] ?? /([^\s<>,;:"]+@[^\s<>,;:"]+)/.exec(value)?.[1];
}

/** RFC 2047 §5: a header value as an encoded-word when it is not plain ASCII. */
export function encodeWord(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : `=?utf-8?B?${Buffer.from(s).toString('base64')}?=`;
}

export interface Part {
  type: string;
  /** Extra header lines (e.g. Content-Disposition). */
  headers?: string[];
  body: Buffer | string;
}

/**
 * Writes an RFC 5322 message: the header lines, then one part or a multipart/mixed of the parts
 * (RFC 2046 §5.1), each base64 (RFC 2045 §6.8). Lines end in CRLF.
 */
export function writeMessage(header: string[], parts: (Part | Part[])[], random: (n: number) => Buffer = randomBytes): Buffer {
  const entity = (p: Part | Part[]): string => {
    if (!Array.isArray(p)) {
      return [`Content-Type: ${p.type}`, 'Content-Transfer-Encoding: base64', ...(p.headers ?? []), '', encodeBase64Lines(Buffer.from(p.body))].join('\r\n');
    }
    const b = makeBoundary(random);
    return [`Content-Type: multipart/alternative; boundary="${b}"`, '', ...p.map((x) => `--${b}\r\n${entity(x)}`), `--${b}--`, ''].join('\r\n');
  };
  const b = makeBoundary(random);
  const body = parts.length === 1 ? entity(parts[0]!) : [`Content-Type: multipart/mixed; boundary="${b}"`, '', ...parts.map((x) => `--${b}\r\n${entity(x)}`), `--${b}--`, ''].join('\r\n');
  return Buffer.from([...header, 'MIME-Version: 1.0', body].join('\r\n'));
}
