/**
 * The little MIME the tunnel needs: split a message into header and body, read header
 * fields and Content-Type, split a multipart body, decode a transfer encoding, and write
 * CRLF-terminated entities. Input is untrusted: every failure is TUNNEL_MALFORMED.
 */
import { MailmeshError } from '../errors.js';
import { fieldValueOf, headerFields, type HeaderSection, type RawField } from '../header.js';

/** A header field of an entity, read from the fields gateway/header.ts splits (nothing copied). */
export class HeaderField {
  readonly #bytes: Buffer;
  readonly #field: RawField;
  #value?: string;

  constructor(bytes: Buffer, field: RawField, readonly name: string) {
    this.#bytes = bytes;
    this.#field = field;
  }

  /** Lower-case field name, for lookups (RFC 5322 §1.2.2: names are case-insensitive). */
  get key(): string {
    return this.#field.key;
  }

  /** The unfolded value, leading white space removed (RFC 5322 §2.2.3); read when first asked for. */
  get value(): string {
    return (this.#value ??= fieldValueOf(this.#bytes, this.#field).replace(/^[ \t]+/, ''));
  }

  /** The field's exact bytes, folding and the final line break included. */
  get raw(): Buffer {
    return this.#bytes.subarray(this.#field.start, this.#field.end);
  }
}

export interface Entity {
  fields: HeaderField[];
  /** Offset of the body in the entity's bytes. */
  bodyStart: number;
  body: Buffer;
}

export interface ContentType {
  type: string;
  subtype: string;
  /** Parameter names lower-cased, values unquoted. */
  params: Record<string, string>;
}

const MAX_FIELDS = 1000;
const MAX_PARTS = 1000;

export function malformed(detail: string): MailmeshError {
  return new MailmeshError('TUNNEL_MALFORMED', detail);
}

/** RFC 5322 §2.1: header fields, then an empty line, then the body; split by gateway/header.ts. */
export function parseEntity(data: Buffer): Entity {
  return entityOf(headerFields(data));
}

/**
 * RFC 5322 §2.2, §3.6.8: the MIME entity of a split header section, where every field is
 * `name ":" value` with name = 1*ftext (printable US-ASCII except ':', no white space before
 * the colon), at most MAX_FIELDS of them; else TUNNEL_MALFORMED.
 */
export function entityOf(header: HeaderSection): Entity {
  const { message, fields } = header;
  if (fields.length > MAX_FIELDS) throw malformed('too many header fields');
  const read = fields.map((f) => {
    const colon = f.start + message.subarray(f.start, f.end).indexOf(0x3a); // within the field: linear overall
    let ok = colon > f.start;
    for (let i = f.start; ok && i < colon; i++) ok = message[i]! >= 0x21 && message[i]! <= 0x7e;
    if (!ok) throw malformed(`bad header line ${JSON.stringify(message.toString('latin1', f.start, Math.min(f.end, f.start + 40)))}`);
    return new HeaderField(message, f, message.toString('latin1', f.start, colon));
  });
  return { fields: read, bodyStart: header.bodyStart, body: message.subarray(header.bodyStart) };
}

export function fieldValue(fields: HeaderField[], name: string): string | undefined {
  const key = name.toLowerCase();
  return fields.find((f) => f.key === key)?.value;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/** RFC 2045 §5.1: type "/" subtype *(";" attribute "=" value), value = token / quoted-string (RFC 5322 §3.2.4). */
export function parseContentType(value: string | undefined): ContentType {
  // RFC 2045 §5.2: no Content-Type means text/plain; charset=us-ascii.
  if (value === undefined) return { type: 'text', subtype: 'plain', params: { charset: 'us-ascii' } };
  let rest = stripComments(value).trim();
  const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*\/\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*/.exec(rest);
  if (!m) throw malformed(`bad Content-Type ${JSON.stringify(value.slice(0, 60))}`);
  rest = rest.slice(m[0].length);
  const params: Record<string, string> = Object.create(null);
  while (rest.length > 0) {
    if (rest[0] !== ';') throw malformed(`bad Content-Type parameters ${JSON.stringify(rest.slice(0, 40))}`);
    rest = rest.slice(1).trimStart();
    if (rest.length === 0) break; // a trailing ';' is common and harmless
    const name = TOKEN.exec(rest);
    if (!name) throw malformed('bad Content-Type parameter name');
    rest = rest.slice(name[0].length).trimStart();
    if (rest[0] !== '=') throw malformed('Content-Type parameter without value');
    rest = rest.slice(1).trimStart();
    let val: string;
    if (rest[0] === '"') {
      let i = 1;
      val = '';
      while (i < rest.length && rest[i] !== '"') {
        if (rest[i] === '\\' && i + 1 < rest.length) i++;
        val += rest[i];
        i++;
      }
      if (i >= rest.length) throw malformed('unterminated quoted string in Content-Type');
      rest = rest.slice(i + 1);
    } else {
      const tok = TOKEN.exec(rest);
      if (!tok) throw malformed('bad Content-Type parameter value');
      val = tok[0];
      rest = rest.slice(tok[0].length);
    }
    params[name[0].toLowerCase()] = val;
    rest = rest.trimStart();
  }
  return { type: m[1]!.toLowerCase(), subtype: m[2]!.toLowerCase(), params };
}

/** RFC 5322 §3.2.2: comments in parentheses (nesting, quoted-pairs), outside quoted strings. */
function stripComments(s: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && (quoted || depth > 0)) {
      if (depth === 0) out += c + (s[i + 1] ?? '');
      i++;
      continue;
    }
    if (depth === 0 && c === '"') quoted = !quoted;
    if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')' && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out;
}

/**
 * RFC 2046 §5.1.1: the body parts between `--boundary` delimiter lines and the close
 * delimiter `--boundary--`; the line break before a delimiter belongs to the delimiter.
 */
export function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  if (!/^[ -~]{1,70}$/.test(boundary)) throw malformed('bad multipart boundary');
  const delim = Buffer.from(`--${boundary}`, 'latin1');
  const starts: Array<{ lineStart: number; after: number; close: boolean }> = [];
  let pos = 0;
  while (pos <= body.length) {
    const at = body.indexOf(delim, pos);
    if (at < 0) break;
    const atLineStart = at === 0 || body[at - 1] === 0x0a;
    pos = at + delim.length;
    if (!atLineStart) continue;
    const close = body[pos] === 0x2d && body[pos + 1] === 0x2d;
    // Transport padding (LWSP) may follow a delimiter before the line break.
    let eol = pos + (close ? 2 : 0);
    while (body[eol] === 0x20 || body[eol] === 0x09) eol++;
    if (eol < body.length && body[eol] !== 0x0d && body[eol] !== 0x0a) continue; // e.g. a longer boundary
    if (body[eol] === 0x0d) eol++;
    if (body[eol] === 0x0a) eol++;
    let lineStart = at;
    if (lineStart > 0) lineStart--; // the LF before the delimiter
    if (lineStart > 0 && body[lineStart - 1] === 0x0d) lineStart--;
    starts.push({ lineStart, after: eol, close });
    if (starts.length > MAX_PARTS) throw malformed('too many body parts');
    if (close) break;
    pos = eol;
  }
  if (starts.length < 2 || !starts[starts.length - 1]!.close) throw malformed('multipart body without parts or close delimiter');
  const parts: Buffer[] = [];
  for (let i = 0; i + 1 < starts.length; i++) parts.push(body.subarray(starts[i]!.after, starts[i + 1]!.lineStart));
  return parts;
}

/** RFC 2045 §6: decode the body by its Content-Transfer-Encoding (identity or base64). */
export function decodeBody(entity: Entity): Buffer {
  const cte = (fieldValue(entity.fields, 'content-transfer-encoding') ?? '7bit').trim().toLowerCase();
  if (cte === '7bit' || cte === '8bit' || cte === 'binary') return entity.body;
  if (cte === 'base64') return decodeBase64(entity.body);
  throw new MailmeshError('TUNNEL_UNSUPPORTED', `Content-Transfer-Encoding ${cte.slice(0, 30)}`);
}

/** RFC 2045 §6.8: the base64 alphabet; line breaks and white space are ignored. */
export function decodeBase64(data: Buffer): Buffer {
  const text = data.toString('latin1').replace(/[\r\n\t ]+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) throw malformed('bad base64 body');
  return Buffer.from(text, 'base64');
}

/** RFC 2045 §6.8: base64 in lines of at most 76 characters, CRLF-terminated. */
export function encodeBase64Lines(data: Uint8Array): string {
  const b64 = Buffer.from(data).toString('base64');
  let out = '';
  for (let i = 0; i < b64.length; i += 76) out += b64.slice(i, i + 76) + '\r\n';
  return out;
}

/** RFC 5322 §2.1: lines end in CRLF on the wire. */
export function toCrlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

/** RFC 2046 §5.1.1: a boundary that cannot occur in base64 or armored data ('=' and '_'). */
export function makeBoundary(random: (n: number) => Buffer): string {
  return `=_mailmesh_${random(18).toString('hex')}`;
}

/** The header fields of the original copied onto the outer tunnel message (docs/architecture.md "Tunnel messages"). */
export const COPIED_FIELDS = ['from', 'to', 'cc', 'date', 'message-id'];
export const TUNNEL_HEADER = 'X-Mailmesh-Tunnel';

export interface OuterOptions {
  /** Keep the original Subject instead of `...`. */
  keepSubject?: boolean;
}

/**
 * The outer header of a tunnel message: From, To, Cc, Date, Message-ID copied byte for byte
 * from the original, Subject `...` (or kept), MIME-Version (RFC 2045 §4), the tunnel marker,
 * then the caller's MIME fields.
 */
export function outerHeader(original: HeaderField[], format: string, mimeFields: string[], opts: OuterOptions): Buffer {
  const copied = original.filter((f) => COPIED_FIELDS.includes(f.key) || (opts.keepSubject === true && f.key === 'subject'));
  // Every line break the splitter saw (CRLF, LF, a bare CR: gateway/header.ts) is written as CRLF (RFC 5322 §2.2.3).
  const lines = copied.map((f) => Buffer.from(f.raw.toString('latin1').replace(/(\r\n|\r|\n)$/, '').replace(/\r\n|\r|\n/g, '\r\n') + '\r\n', 'latin1'));
  const own = [...(opts.keepSubject === true ? [] : ['Subject: ...']), 'MIME-Version: 1.0', `${TUNNEL_HEADER}: ${format}`, ...mimeFields];
  return Buffer.concat([...lines, Buffer.from(own.map((l) => l + '\r\n').join('') + '\r\n', 'latin1')]);
}
