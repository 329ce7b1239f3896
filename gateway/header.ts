/**
 * The RFC 5322 module: the one linear splitter of a header section, the readers built on it
 * where the gateway decides on trust (the authserv-id of an Authentication-Results field,
 * RFC 8601 §2.2; the author domain of the From field, RFC 5322 §3.6.2; the Received count,
 * RFC 5321 §6.3), and the date-time every header we write carries (RFC 5322 §3.3). Every other
 * reader of header fields (the tunnel's MIME, gateway/tunnel/mime.ts; the policy triggers) takes
 * its fields from `headerFields`. No regular expression runs over header data here: each reader
 * is one pass over the characters, and the From field is capped (MAX_FROM_LENGTH). None of them
 * throws on bad input.
 */
import { domainToASCII } from 'node:url';
import { parseDomain, type Domain } from '../directory/domain.js';

/** The longest From field value (unfolded) read for an author domain; a longer one has none. */
export const MAX_FROM_LENGTH = 4096;

export interface RawField {
  /** Lower-case field name, white space (also folded) before the colon removed (RFC 5322 §4.5.3 obs-optional). */
  key: string;
  /** Offsets of the field's bytes in the message, folding and the final line break included. */
  start: number;
  end: number;
}

/** A message's header section as split once: the fields, where the header ends and the body starts. */
export interface HeaderSection {
  /** The message the offsets point into (never copied). */
  message: Buffer;
  fields: RawField[];
  /** The offset of the empty line that ends the header section, or the message's length. */
  headerEnd: number;
  /** The offset of the body: after the empty line's line break, or the message's length (RFC 5322 §3.5: the body is optional). */
  bodyStart: number;
}

/**
 * RFC 5322 §2.1, §2.2, §2.2.3: the header fields up to the first empty line; a line starting
 * with WSP continues the field. A line ends at CRLF, at LF alone (as gateway/tunnel/mime.ts
 * accepts), and at a bare CR: some readers downstream take it for a line break, so a field that
 * a bare CR hides behind another (a second From, a forged Authentication-Results) is seen here
 * too. A line without a colon is a field with an empty key (kept, never interpreted).
 */
export function headerFields(message: Buffer): HeaderSection {
  const fields: RawField[] = [];
  const headerEnd = eachField(message, (start, end) => fields.push({ key: fieldKey(message, start, end), start, end }));
  return { message, fields, headerEnd, bodyStart: headerEnd < message.length ? lineEnd(message, headerEnd) : headerEnd };
}

/** The splitter of headerFields: calls `field` with each field's offsets; returns where the header section ends. */
function eachField(message: Buffer, field: (start: number, end: number) => void): number {
  let pos = 0;
  while (pos < message.length) {
    if (message[pos] === 0x0a || message[pos] === 0x0d) break; // the empty line
    const start = pos;
    for (;;) {
      pos = lineEnd(message, pos);
      if (pos >= message.length || (message[pos] !== 0x20 && message[pos] !== 0x09)) break;
    }
    field(start, pos);
  }
  return pos;
}

/** RFC 5321 §6.3: the number of Received fields in the header section (split as headerFields does, nothing kept). */
export function countReceived(message: Buffer): number {
  let n = 0;
  eachField(message, (start, end) => {
    if (fieldKey(message, start, end) === 'received') n++;
  });
  return n;
}

/** RFC 5322 §3.3 date-time, e.g. "Tue, 01 Jul 2003 10:52:37 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/** The index after the line break that ends the line at `pos`: CRLF, LF or a bare CR; or the length. */
function lineEnd(message: Buffer, pos: number): number {
  for (let i = pos; i < message.length; i++) {
    if (message[i] === 0x0a) return i + 1;
    if (message[i] === 0x0d) return message[i + 1] === 0x0a ? i + 2 : i + 1;
  }
  return message.length;
}

function fieldKey(message: Buffer, start: number, end: number): string {
  const at = message.subarray(start, end).indexOf(0x3a); // within the field only: linear overall
  if (at < 0) return '';
  const colon = start + at;
  // White space before the colon, folded or not: lenient readers downstream accept both.
  let e = colon;
  while (e > start && (message[e - 1] === 0x20 || message[e - 1] === 0x09 || message[e - 1] === 0x0d || message[e - 1] === 0x0a)) e--;
  return message.toString('latin1', start, e).toLowerCase();
}

/** RFC 5322 §2.2.3: a field's value, unfolded (every CR and LF removed), without the name. */
export function fieldValueOf(message: Buffer, f: RawField, encoding: BufferEncoding = 'latin1'): string {
  const raw = message.toString(encoding, f.start, f.end);
  return raw.slice(raw.indexOf(':') + 1).replaceAll('\r', '').replaceAll('\n', '');
}

/**
 * RFC 5322 §3.2.2: the index after the CFWS at `i` (white space, line breaks, comments that
 * nest and hold quoted-pairs), or -1 for a comment that is never closed.
 */
function skipCfws(s: string, i: number): number {
  let depth = 0;
  for (; i < s.length; i++) {
    const c = s[i];
    if (depth > 0 && c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0 && c !== ' ' && c !== '\t' && c !== '\r' && c !== '\n') return i;
  }
  return depth > 0 ? -1 : i;
}

// RFC 2045 §5.1 tspecials, which end a token (with space and the controls).
const TSPECIALS = new Set('()<>@,;:\\"/[]?='.split(''));

/**
 * RFC 8601 §2.2: the authserv-id of an Authentication-Results value (`authserv-id = value`,
 * RFC 2045 token or quoted-string, after optional CFWS), in the form compared: quotes and
 * quoted-pairs removed, trimmed, lower case, trailing dots removed, IDNA to ASCII when it is
 * not ASCII. undefined when there is none or a comment or quote is never closed.
 */
export function authservIdOf(value: string): string | undefined {
  let i = skipCfws(value, 0);
  if (i < 0 || i >= value.length) return undefined;
  let id = '';
  if (value[i] === '"') {
    for (i++; i < value.length && value[i] !== '"'; i++) {
      if (value[i] === '\\') i++;
      if (i < value.length) id += value[i];
    }
    if (i >= value.length) return undefined;
    id = id.trim();
  } else {
    for (; i < value.length; i++) {
      const c = value[i]!;
      if (c <= ' ' || c === '\x7f' || TSPECIALS.has(c)) break;
      id += c;
    }
  }
  // IDNA first (UTS #46 maps look-alikes such as U+3002 and fullwidth dots to '.'), then the
  // trailing dots: `mx.example。` is our id too. A non-ASCII id that is no domain name (a
  // no-break space, say, which a reader's trim() removes) cannot be read: undefined.
  // eslint-disable-next-line no-control-regex -- a plain ASCII test on a short string, no quantifier nesting
  if (/[^\x00-\x7f]/.test(id)) id = domainToASCII(id);
  let end = id.length;
  while (end > 0 && id[end - 1] === '.') end--;
  id = id.slice(0, end).toLowerCase();
  return id || undefined;
}

/**
 * RFC 5322 §3.6.2, §3.4: the domain of the author, when the header has exactly one From field
 * holding exactly one mailbox whose domain is a domain name. Anything else (no From, several
 * From fields, several mailboxes, a group, a domain literal, a value over MAX_FROM_LENGTH)
 * has no author domain.
 */
export function authorDomain(header: HeaderSection): Domain | undefined {
  const { message, fields } = header;
  const from = fields.filter((f) => f.key === 'from');
  if (from.length !== 1 || from[0]!.end - from[0]!.start > MAX_FROM_LENGTH * 2) return undefined;
  const value = fieldValueOf(message, from[0]!, 'utf8');
  if (value.length > MAX_FROM_LENGTH) return undefined;
  const addr = singleAddrSpec(value);
  return addr === undefined ? undefined : domainOfAddrSpec(addr);
}

/**
 * RFC 5322 §3.4 mailbox = name-addr / addr-spec: one pass that drops comments, notes quoted
 * strings, and finds the angle-addr. undefined for a list (a comma outside quotes, comments
 * and angle brackets), a group (a colon outside them), two angle-addrs, or an `@` outside the
 * angle brackets next to an angle-addr.
 */
function singleAddrSpec(value: string): string | undefined {
  let outside = ''; // the text outside <...>, comments removed
  let inside: string | undefined; // the text inside <...>
  let angles = 0;
  let inAngle = false;
  let quoted = false;
  let depth = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
      continue;
    }
    let ch = c;
    if (quoted) {
      if (c === '\\' && i + 1 < value.length) ch = c + value[++i]!;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '(') {
      depth = 1;
      ch = ' ';
    } else if (c === '<') {
      if (inAngle || ++angles > 1) return undefined;
      inAngle = true;
      inside = '';
      continue;
    } else if (c === '>') {
      if (!inAngle) return undefined;
      inAngle = false;
      continue;
    } else if (c === ',' || c === ';' || (c === ':' && !inAngle)) return undefined;
    if (inAngle) inside += ch;
    else outside += ch;
  }
  if (quoted || depth > 0 || inAngle) return undefined;
  if (inside !== undefined) {
    if (hasUnquotedAt(outside)) return undefined; // `a@x <b@y>`: which one is the author?
    return inside.trim();
  }
  return outside.trim();
}

function hasUnquotedAt(s: string): boolean {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    if (quoted && s[i] === '\\') i++;
    else if (s[i] === '"') quoted = !quoted;
    else if (!quoted && s[i] === '@') return true;
  }
  return false;
}

/** RFC 5322 §3.4.1 addr-spec = local-part "@" domain: the domain after the last `@` outside quotes. */
function domainOfAddrSpec(addr: string): Domain | undefined {
  let at = -1;
  let quoted = false;
  for (let i = 0; i < addr.length; i++) {
    if (quoted && addr[i] === '\\') i++;
    else if (addr[i] === '"') quoted = !quoted;
    else if (!quoted && addr[i] === '@') at = i;
  }
  if (at <= 0) return undefined;
  const domain = addr.slice(at + 1).trim();
  if (domain.startsWith('[')) return undefined; // a domain literal names no domain
  try {
    return parseDomain(domain);
  } catch {
    return undefined;
  }
}
