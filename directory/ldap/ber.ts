/**
 * BER framing and a structural check of LDAPMessages, before ldapjs sees them. ldapjs 3.0.7
 * loops forever on some malformed messages (a string whose length overruns its enclosing
 * element, e.g. inside a substrings filter, is read as null without advancing) and parses
 * pipelined messages recursively; we hand it exactly one well-formed message at a time.
 */

/** What a buffer starts with: a complete element's header, not enough bytes yet, or garbage. */
type Header = { tag: number; length: number; contentStart: number } | 'incomplete' | 'invalid';

/**
 * RFC 4511 §5.1: LDAP uses BER with definite lengths only. X.690 §8.1.2: identifier octet (we
 * accept the low-tag-number form only: LDAP tags are all below 31); §8.1.3: length in short
 * form, or long form with 1–4 length octets (0x80, indefinite, is refused; so is 0xff).
 */
export function readHeader(buf: Buffer, offset = 0): Header {
  if (buf.length - offset < 2) return 'incomplete';
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) return 'invalid';
  const first = buf[offset + 1]!;
  if (first < 0x80) return { tag, length: first, contentStart: offset + 2 };
  const octets = first & 0x7f;
  if (octets === 0 || octets > 4) return 'invalid';
  if (buf.length - offset < 2 + octets) return 'incomplete';
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + buf[offset + 2 + i]!;
  return { tag, length, contentStart: offset + 2 + octets };
}

/**
 * X.690 §8.1.1: the element at `offset` and, for a constructed one (§8.1.2.5, bit 6 set),
 * every element inside it, recursively, fit exactly in their enclosing lengths.
 */
function wellFormed(buf: Buffer, offset: number, end: number, depth: number): boolean {
  while (offset < end) {
    const h = readHeader(buf.subarray(0, end), offset);
    if (typeof h === 'string') return false;
    const next = h.contentStart + h.length;
    if (next > end) return false;
    if (h.tag & 0x20 && (depth === 0 || !wellFormed(buf, h.contentStart, next, depth - 1))) return false;
    offset = next;
  }
  return true;
}

/** One whole LDAPMessage (RFC 4511 §4.1.1: a SEQUENCE), structurally sound down to `maxDepth` levels. */
export function isWellFormedMessage(msg: Buffer, maxDepth = 32): boolean {
  const h = readHeader(msg);
  return typeof h !== 'string' && h.tag === 0x30 && h.contentStart + h.length === msg.length && wellFormed(msg, 0, msg.length, maxDepth);
}

/**
 * Splits a receive buffer into whole messages. Returns the messages, what is left over (an
 * incomplete message), or 'invalid' when the bytes cannot be an LDAPMessage or one would be
 * larger than `maxBytes`.
 */
export function takeMessages(pending: Buffer, maxBytes: number): { messages: Buffer[]; rest: Buffer } | 'invalid' {
  const messages: Buffer[] = [];
  let offset = 0;
  while (offset < pending.length) {
    if (pending[offset] !== 0x30) return 'invalid';
    const h = readHeader(pending, offset);
    if (h === 'invalid') return 'invalid';
    if (h === 'incomplete') break;
    const end = h.contentStart + h.length;
    if (end - offset > maxBytes) return 'invalid';
    if (end > pending.length) break;
    messages.push(pending.subarray(offset, end));
    offset = end;
  }
  return { messages, rest: pending.subarray(offset) };
}

/** X.690 §8.1.3: a definite length, short form below 128, else long form. */
function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

/** X.690 §8.3: a non-negative INTEGER (or ENUMERATED) in the fewest octets, two's complement. */
function encodeUnsigned(tag: number, n: number): Buffer {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  if (bytes.length === 0 || bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(tag, Buffer.from(bytes));
}

/** One element of a message that passed isWellFormedMessage. */
interface Element {
  tag: number;
  content: Buffer;
}

function element(buf: Buffer, offset = 0): Element & { end: number } {
  const h = readHeader(buf, offset) as Exclude<Header, string>;
  const end = h.contentStart + h.length;
  return { tag: h.tag, content: buf.subarray(h.contentStart, end), end };
}

function children(e: Element): Element[] {
  const out: Element[] = [];
  for (let offset = 0; offset < e.content.length; ) {
    const c = element(e.content, offset);
    out.push(c);
    offset = c.end;
  }
  return out;
}

/** The elements' tags are `want`, where a trailing '?' entry may be absent. */
function tagsAre(els: Element[], want: number[], optional = 0): boolean {
  return els.length <= want.length && els.length >= want.length - optional && els.every((e, i) => e.tag === want[i]);
}

const OCTET_STRING = 0x04;
const SEQUENCE = 0x30;

/** RFC 4511 §4.5.1.7 Filter CHOICE, by context tag. */
function isFilter(f: Element, depth: number): boolean {
  if (depth < 0) return false;
  switch (f.tag) {
    case 0xa0: // and: SET OF Filter
    case 0xa1: // or
      return children(f).every((c) => isFilter(c, depth - 1));
    case 0xa2: { // not: Filter
      const c = children(f);
      return c.length === 1 && isFilter(c[0]!, depth - 1);
    }
    case 0xa3: // equalityMatch, greaterOrEqual, lessOrEqual, approxMatch: AttributeValueAssertion
    case 0xa5:
    case 0xa6:
    case 0xa8:
      return tagsAre(children(f), [OCTET_STRING, OCTET_STRING]);
    case 0xa4: { // substrings: type, SEQUENCE SIZE (1..MAX) OF CHOICE { initial [0], any [1], final [2] }
      const c = children(f);
      if (!tagsAre(c, [OCTET_STRING, SEQUENCE])) return false;
      const parts = children(c[1]!);
      return parts.length > 0 && parts.every((p) => p.tag >= 0x80 && p.tag <= 0x82);
    }
    case 0x87: // present: AttributeDescription
      return true;
    case 0xa9: { // extensibleMatch: matchingRule [1]?, type [2]?, matchValue [3], dnAttributes [4]?
      const tags = children(f).map((c) => c.tag);
      return /^(81)?(82)?83(84)?$/.test(tags.map((t) => t.toString(16)).join(''));
    }
    default:
      return false;
  }
}

/** RFC 4511 §4.1.11: Controls ::= SEQUENCE OF SEQUENCE { controlType, criticality BOOLEAN?, controlValue? }. */
function isControls(c: Element): boolean {
  return children(c).every((ctl) => {
    if (ctl.tag !== SEQUENCE) return false;
    const tags = children(ctl).map((x) => x.tag);
    return tags[0] === OCTET_STRING && /^(01)?(04)?$/.test(tags.slice(1).map((t) => t.toString(16).padStart(2, '0')).join(''));
  });
}

/** The shape of the requests we hand to ldapjs (RFC 4511 §4.2, §4.3, §4.5.1, §4.11); other ops are not looked into. */
function isRequestShape(op: Element, maxDepth: number): boolean {
  switch (op.tag) {
    case 0x60: // BindRequest: version, name, simple [0] or sasl [3]
      return tagsAre(children(op), [0x02, OCTET_STRING, 0x80]) || tagsAre(children(op), [0x02, OCTET_STRING, 0xa3]);
    case 0x63: { // SearchRequest
      const c = children(op);
      if (c.length !== 8 || !tagsAre(c.slice(0, 6), [OCTET_STRING, 0x0a, 0x0a, 0x02, 0x02, 0x01])) return false;
      return isFilter(c[6]!, maxDepth) && c[7]!.tag === SEQUENCE && children(c[7]!).every((a) => a.tag === OCTET_STRING);
    }
    case 0x42: // UnbindRequest: NULL
      return op.content.length === 0;
    case 0x50: // AbandonRequest: MessageID
      return op.content.length >= 1 && op.content.length <= 4;
    default:
      return true;
  }
}

/**
 * RFC 4511 §4.1.1: LDAPMessage ::= SEQUENCE { messageID (0 … 2^31-1), protocolOp, controls [0]? }.
 * Returns the messageID and the protocolOp's tag, or undefined if the message is not well-formed
 * BER or (for bind, unbind, search and abandon) its request does not have the RFC 4511 shape.
 * Filters nest at most `maxDepth` levels.
 */
export function checkMessage(msg: Buffer, maxDepth = 16): { messageId: number; op: number } | undefined {
  if (!isWellFormedMessage(msg, maxDepth + 8)) return undefined;
  const parts = children(element(msg));
  if (parts.length < 2 || parts.length > 3 || parts[0]!.tag !== 0x02) return undefined;
  const id = parts[0]!.content;
  if (id.length < 1 || id.length > 4 || id[0]! & 0x80) return undefined;
  if (parts[2] && (parts[2].tag !== 0xa0 || !isControls(parts[2]))) return undefined;
  if (!isRequestShape(parts[1]!, maxDepth)) return undefined;
  return { messageId: id.reduce((n, b) => n * 256 + b, 0), op: parts[1]!.tag };
}

/**
 * RFC 4511 §4.1.9: an LDAPMessage carrying an LDAPResult (resultCode, matchedDN,
 * diagnosticMessage) under the response's [APPLICATION n] tag; `responseName` adds the
 * ExtendedResponse's [10] (RFC 4511 §4.12).
 */
export function encodeResult(messageId: number, responseTag: number, resultCode: number, diagnostic: string, responseName?: string): Buffer {
  const body = Buffer.concat([
    encodeUnsigned(0x0a, resultCode),
    tlv(0x04, Buffer.alloc(0)),
    tlv(0x04, Buffer.from(diagnostic, 'utf8')),
    ...(responseName ? [tlv(0x8a, Buffer.from(responseName, 'latin1'))] : []),
  ]);
  return tlv(0x30, Buffer.concat([encodeUnsigned(0x02, messageId), tlv(responseTag, body)]));
}
