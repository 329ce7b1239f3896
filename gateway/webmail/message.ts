import { randomBytes } from 'node:crypto';
import { MailmeshError } from '../errors.js';
import PostalMime, { addressParser, decodeWords, type Email } from 'postal-mime';
import { encodeBase64Lines, makeBoundary } from '../tunnel/mime.js';

/** What the message page shows of a decrypted message. */
export interface Readable {
  from: string;
  to: string;
  subject: string;
  date: string;
  messageId: string;
  /** The text/plain body, or the text of the text/html body. */
  text: string;
  /** The text/html body when the message has one (unsanitised: the page sanitises it, sanitize.ts). */
  html?: string;
  /** The sender asked for a signed receipt (`X-Mailmesh-Registered: yes`). */
  registered: boolean;
  attachments: { name: string; type: string; data: Buffer }[];
}

/**
 * Bounds on what WebMail reads of a stranger's message (postal-mime enforces them, in one pass):
 * header bytes of all parts together (Postfix's header_size_limit is 100 KiB), MIME depth and parts.
 */
export const READ_LIMITS = { maxHeadersSize: 256 * 1024, maxNestingDepth: 20, maxPartCount: 1000, maxRfc822NestingDepth: 3 } as const;

/** Elements whose end (or a br) starts a new line in the text of an HTML body. */
const BLOCK = new Set(['p', 'div', 'tr', 'li', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table', 'blockquote', 'pre', 'hr', 'dd', 'dt']);
/** Elements whose content is no text of the message (HTML §13.1.2: raw text and metadata). */
const HIDDEN = new Set(['script', 'style', 'head', 'title', 'template', 'noscript', 'xmp', 'textarea']);
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** HTML §13.5 character references: numeric ones and the few names mail uses (bounded quantifiers: one pass). */
export function decodeEntities(s: string): string {
  return s.replace(/&(#[0-9]{1,8}|#x[0-9a-f]{1,7}|amp|lt|gt|quot|apos|nbsp);?/gi, (m, e: string) => {
    const k = e.toLowerCase();
    if (!k.startsWith('#')) return NAMED[k] ?? m;
    const cp = k.startsWith('#x') ? parseInt(k.slice(2), 16) : parseInt(k.slice(1), 10);
    return cp > 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? String.fromCodePoint(cp) : '\ufffd';
  });
}

/**
 * The text of an HTML body, in one pass (every `<` and `>` is looked at once): tags dropped, block
 * ends as line breaks, the content of script-like elements and comments dropped, references decoded.
 */
export function htmlToText(html: string): string {
  const lower = html.replace(/[A-Z]+/g, (m) => m.toLowerCase()); // ASCII only: indices stay the same
  const out: string[] = [];
  const n = html.length;
  let gt = -1; // the next '>' at or after the current '<' (searched again only once passed)
  for (let i = 0; i < n; ) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      out.push(html.slice(i));
      break;
    }
    out.push(html.slice(i, lt));
    if (lower.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      i = end < 0 ? n : end + 3;
      continue;
    }
    if (gt < lt) gt = html.indexOf('>', lt);
    if (gt < 0) {
      out.push(html.slice(lt)); // no '>' anywhere after: the rest is text
      break;
    }
    const name = /^<\/?([a-z][a-z0-9]{0,15})(?=[\s/>])|^<[!?]/.exec(lower.slice(lt, Math.min(gt + 1, lt + 18)));
    if (!name) {
      out.push('<');
      i = lt + 1;
      continue;
    }
    const tag = name[1] ?? '';
    i = gt + 1;
    if (lower[lt + 1] !== '/' && HIDDEN.has(tag)) {
      const end = lower.indexOf(`</${tag}`, i);
      const close = end < 0 ? -1 : html.indexOf('>', end);
      i = close < 0 ? n : close + 1;
      continue;
    }
    if (tag === 'br' || (lower[lt + 1] === '/' && BLOCK.has(tag))) out.push('\n');
  }
  const lines = decodeEntities(out.join('')).split('\n').map((l) => l.trimEnd());
  return lines.join('\n').replace(/\n{3,}/g, '\n\n').trim();
}

/** Unicode bidirectional controls (UAX #9 §2): they make `report\u202Efdp.exe` look like `reportexe.pdf`. */
const BIDI = new Set([0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]);

/**
 * RFC 2183 §2.3 / RFC 2231 §4: the decoded file name (postal-mime joins continuations and
 * charsets), with path separators, control and bidi characters replaced; `attachment-n` if none.
 */
export function fileName(name: string | null | undefined, n: number): string {
  const chars = [...(name || `attachment-${n}`)].slice(0, 200);
  return chars.map((c) => (c === '/' || c === '\\' || c.charCodeAt(0) < 0x20 || c === '\x7f' || BIDI.has(c.codePointAt(0)!) ? '_' : c)).join('');
}

/**
 * RFC 6266 §4.1-4.3: the download's Content-Disposition, an ASCII `filename` for old clients and
 * `filename*` (RFC 8187 §3.2.1: UTF-8, every byte outside attr-char percent-encoded) with the real name.
 */
export function attachmentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const ext = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${ext}`;
}

/**
 * Reads a message (RFC 5322, MIME: RFC 2045-2047, RFC 2231) for display with postal-mime, a
 * streaming parser; untrusted input, so failures and READ_LIMITS overruns are WEBMAIL_INVALID.
 */
export async function readMessage(message: Buffer): Promise<Readable> {
  let e: Email;
  try {
    e = await PostalMime.parse(message, { ...READ_LIMITS, attachmentEncoding: 'arraybuffer' });
  } catch (err) {
    throw new MailmeshError('WEBMAIL_INVALID', `unreadable message: ${(err as Error).message}`);
  }
  // RFC 5322 §3.6: the first field of each name, its encoded-words decoded (RFC 2047 §6).
  const h = (name: string) => decodeWords(e.headers.find((x) => x.key === name)?.value ?? '').trim();
  // postal-mime renders a body part of one type as the other only when the message has both types.
  const html = e.html;
  return {
    from: h('from'), to: h('to'), subject: h('subject'), date: h('date'), messageId: h('message-id'), text: e.text ?? (html !== undefined ? htmlToText(html) : ''),
    ...(html !== undefined ? { html } : {}),
    registered: /^(yes|true|1)$/i.test(h('x-mailmesh-registered')),
    attachments: e.attachments.map((a, i) => ({ name: fileName(a.filename, i + 1), type: a.mimeType, data: Buffer.from(a.content as ArrayBuffer) })),
  };
}

/** The first address in a From/To value (RFC 5322 §3.4: `name <addr>`, a bare addr-spec or a group), by postal-mime's one-pass parser. */
export function firstAddress(value: string): string | undefined {
  const first = addressParser(value, { flatten: true }).find((a) => a.address && a.address.includes('@'));
  return first?.address;
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
