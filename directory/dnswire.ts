import { isIPv4, isIPv6 } from 'node:net';
import { MailmeshError } from './errors.js';

/**
 * A small DNS message encoder/decoder (RFC 1035 §4), just what an authoritative server and a
 * stub resolver need: decode a query (with compression pointers handled safely), encode names
 * and resource records. Names on the wire are kept as Buffers; lookups use their
 * lower-cased wire form (RFC 4343 §3: only ASCII letters fold). Protocol-neutral, so the core
 * holds it: the DNS face (directory/dns/) and the federation's resolver (federation/dns.ts) share it.
 */

export const TYPE = { A: 1, AAAA: 28, NS: 2, SOA: 6, TXT: 16, SMIMEA: 53, OPENPGPKEY: 61, OPT: 41, TSIG: 250, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const TYPE_NAMES: Record<number, string> = { 1: 'A', 28: 'AAAA', 2: 'NS', 6: 'SOA', 16: 'TXT', 53: 'SMIMEA', 61: 'OPENPGPKEY' };
const CLASS_IN = 1;
/** RFC 1035 §3.2.5: QCLASS * (ANY); the class of a TSIG record (RFC 8945 §4.2). */
export const CLASS_ANY = 255;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, NOTAUTH: 9 } as const;
/** RFC 6891 §6.1.3: BADVERS is extended RCODE 16 (upper 8 bits 1 in the OPT TTL, 0 in the header). */
export const EXTENDED_BADVERS = 1;

// RFC 1035 §4.1.1: header flag bits (in the 16-bit word after the ID).
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, CD: 0x0010 } as const;
export const HEADER_SIZE = 12;
/** RFC 1035 §4.2.1: without EDNS a UDP message is at most 512 octets. */
export const UDP_MIN = 512;

interface Edns {
  udpSize: number;
  version: number;
}

export interface Query {
  id: number;
  /** The RD and CD bits of the query, to be copied into the answer (RFC 1035 §4.1.1, RFC 4035 §3.1.6). */
  copyFlags: number;
  /** The question name as asked (case kept), uncompressed wire form. */
  qname: Buffer;
  /** Lower-cased wire form as a latin1 string: the lookup key. */
  key: string;
  qtype: number;
  qclass: number;
  edns?: Edns;
  /** The TSIG record (RFC 8945 §4.2), always the last record of the message, and where it starts. */
  tsig?: { start: number; name: Buffer; klass: number; ttl: number; rdata: Buffer };
}

function malformed(detail: string): never {
  throw new MailmeshError('DNS_MALFORMED', detail);
}

/**
 * RFC 1035 §4.1.4: reads a possibly compressed name at `offset`; returns it uncompressed and
 * the offset after it. A pointer must point strictly before the label sequence that holds it,
 * so every jump goes backwards and loops are impossible; the name is at most 255 octets (§3.1).
 */
export function readName(msg: Buffer, offset: number): { name: Buffer; end: number } {
  const parts: Buffer[] = [];
  let length = 0;
  let pos = offset;
  let segmentStart = offset;
  let end = -1;
  for (;;) {
    if (pos >= msg.length) malformed('name runs past the end of the message');
    const b = msg[pos]!;
    if (b === 0) {
      parts.push(msg.subarray(pos, pos + 1));
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = b & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= msg.length) malformed('truncated compression pointer');
      const target = ((b & 0x3f) << 8) | msg[pos + 1]!;
      if (target >= segmentStart) malformed('compression pointer does not point backwards');
      if (end < 0) end = pos + 2;
      pos = segmentStart = target;
      continue;
    }
    // RFC 6891 §5: the extended label types 01/10 are not in use.
    if (kind !== 0) malformed('unknown label type');
    if (pos + 1 + b > msg.length) malformed('label runs past the end of the message');
    length += 1 + b;
    if (length + 1 > 255) malformed('name longer than 255 octets');
    parts.push(msg.subarray(pos, pos + 1 + b));
    pos += 1 + b;
  }
  return { name: Buffer.concat(parts), end };
}

/** RFC 4343 §3: ASCII-only case folding of a wire name (length octets are < 0x41 or skipped). */
export function lowerName(name: Buffer): Buffer {
  const out = Buffer.from(name);
  for (let i = 0; i < out.length; ) {
    const len = out[i]!;
    for (let j = i + 1; j <= i + len; j++) {
      const c = out[j]!;
      if (c >= 0x41 && c <= 0x5a) out[j] = c | 0x20;
    }
    i += len + 1;
    if (len === 0) break;
  }
  return out;
}

/** RFC 1035 §3.1: a text name (dots between labels, no escapes) in wire form; '' or '.' is the root. */
export function nameToWire(text: string): Buffer {
  const labels = text.replace(/\.$/, '') === '' ? [] : text.replace(/\.$/, '').split('.');
  return labelsToWire(labels);
}

/** RFC 1035 §3.1: labels of 1–63 octets, the whole name at most 255 octets. */
export function labelsToWire(labels: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l, 'utf8');
    if (b.length < 1 || b.length > 63) throw new MailmeshError('DOMAIN_INVALID', `label ${JSON.stringify(l)} must have 1–63 octets`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  const wire = Buffer.concat(parts);
  if (wire.length > 255) throw new MailmeshError('DOMAIN_INVALID', 'name longer than 255 octets');
  return wire;
}

/** Reads one resource record (RFC 1035 §4.1.3) at `offset`: its fields, RDATA as a view into `msg`, and the offset after it. */
export function readRR(msg: Buffer, offset: number): { name: Buffer; type: number; klass: number; ttl: number; rdata: Buffer; end: number } {
  const { name, end: afterName } = readName(msg, offset);
  if (afterName + 10 > msg.length) malformed('truncated resource record');
  const rdlength = msg.readUInt16BE(afterName + 8);
  const end = afterName + 10 + rdlength;
  if (end > msg.length) malformed('RDATA runs past the end of the message');
  return {
    name,
    type: msg.readUInt16BE(afterName),
    klass: msg.readUInt16BE(afterName + 2),
    ttl: msg.readUInt32BE(afterName + 4),
    rdata: msg.subarray(afterName + 10, end),
    end,
  };
}

/**
 * Decodes a query (RFC 1035 §4.1). Callers check the header first (length ≥ 12, QR clear,
 * opcode QUERY). Exactly one question; every other section must parse; at most one OPT
 * record, owned by the root (RFC 6891 §6.1.1). Anything else is DNS_MALFORMED (FORMERR).
 */
export function parseQuery(msg: Buffer): Query {
  if (msg.length < HEADER_SIZE) malformed('shorter than a header');
  const word = msg.readUInt16BE(2);
  const qdcount = msg.readUInt16BE(4);
  if (qdcount !== 1) malformed(`QDCOUNT ${qdcount}`);
  const { name: qname, end } = readName(msg, HEADER_SIZE);
  if (end + 4 > msg.length) malformed('truncated question');
  const query: Query = {
    id: msg.readUInt16BE(0),
    copyFlags: word & (FLAG.RD | FLAG.CD),
    qname,
    key: lowerName(qname).toString('latin1'),
    qtype: msg.readUInt16BE(end),
    qclass: msg.readUInt16BE(end + 2),
  };
  let pos = end + 4;
  const rest = msg.readUInt16BE(6) + msg.readUInt16BE(8);
  const arcount = msg.readUInt16BE(10);
  // Every record uses at least 11 octets, so huge counts end at the message end, not in a long loop.
  for (let i = 0; i < rest + arcount; i++) {
    const start = pos;
    const rr = readRR(msg, pos);
    pos = rr.end;
    // RFC 8945 §5.1: a TSIG record is the last record of the additional section, and there is one.
    if (rr.type === TYPE.TSIG) {
      if (i !== rest + arcount - 1 || i < rest) malformed('TSIG record not last in the additional section');
      query.tsig = { start, name: rr.name, klass: rr.klass, ttl: rr.ttl, rdata: rr.rdata };
      continue;
    }
    if (rr.type !== TYPE.OPT) continue;
    if (i < rest || query.edns) malformed('OPT record misplaced or repeated');
    if (rr.name.length !== 1) malformed('OPT record not owned by the root');
    // RFC 6891 §6.1.2/§6.1.3: CLASS is the requestor's UDP payload size, TTL holds ext-RCODE, VERSION, flags.
    query.edns = { udpSize: rr.klass, version: (rr.ttl >>> 16) & 0xff };
  }
  if (pos !== msg.length) malformed('trailing octets after the last record');
  return query;
}

/** RFC 1035 §4.1.3: NAME TYPE CLASS TTL RDLENGTH RDATA. */
export function encodeRR(owner: Buffer, type: number, ttl: number, rdata: Buffer, klass = CLASS_IN): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(klass, 2);
  fixed.writeUInt32BE(ttl >>> 0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([owner, fixed, rdata]);
}

/** RFC 6891 §6.1.2: the OPT pseudo-record of an answer: our payload size, extended RCODE, version 0, no options. */
export function encodeOpt(udpSize: number, extendedRcode = 0): Buffer {
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(TYPE.OPT, 1);
  opt.writeUInt16BE(udpSize, 3);
  opt.writeUInt8(extendedRcode, 5);
  return opt;
}

/** RFC 1035 §4.1.1: a 12-octet header. */
export function encodeHeader(h: { id: number; flags: number; rcode: number; opcode?: number; qd: number; an: number; ns: number; ar: number }): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.writeUInt16BE(h.id, 0);
  b.writeUInt16BE(h.flags | ((h.opcode ?? 0) << 11) | (h.rcode & 0xf), 2);
  b.writeUInt16BE(h.qd, 4);
  b.writeUInt16BE(h.an, 6);
  b.writeUInt16BE(h.ns, 8);
  b.writeUInt16BE(h.ar, 10);
  return b;
}

/** RFC 1035 §4.1.2: QNAME QTYPE QCLASS. */
export function encodeQuestion(qname: Buffer, qtype: number, qclass = CLASS_IN): Buffer {
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(qtype, 0);
  tail.writeUInt16BE(qclass, 2);
  return Buffer.concat([qname, tail]);
}

// ---- RDATA (RFC 1035 §3.3, RFC 7929 §2.1, RFC 6698 §2.1) ----

/** RFC 1035 §3.3.13: MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM. */
export function soaRdata(s: { mname: Buffer; rname: Buffer; serial: number; refresh: number; retry: number; expire: number; minimum: number }): Buffer {
  const nums = Buffer.alloc(20);
  [s.serial, s.refresh, s.retry, s.expire, s.minimum].forEach((n, i) => nums.writeUInt32BE(n >>> 0, i * 4));
  return Buffer.concat([s.mname, s.rname, nums]);
}

/** RFC 1035 §3.3.14: one or more <character-string>s of at most 255 octets each; longer text is split. */
export function txtRdata(text: string): Buffer {
  return Buffer.concat(txtStrings(text).map((s) => Buffer.concat([Buffer.from([s.length]), s])));
}

export function txtStrings(text: string): Buffer[] {
  const all = Buffer.from(text, 'utf8');
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += 255) out.push(all.subarray(i, i + 255));
  return out.length ? out : [Buffer.alloc(0)];
}

/** RFC 1035 §5.1: a <character-string> in quotes, with '"' and '\' escaped and non-printable octets as \DDD. */
function quoted(s: Buffer): string {
  let out = '"';
  for (const c of s) {
    if (c < 0x20 || c >= 0x7f) out += `\\${String(c).padStart(3, '0')}`;
    else if (c === 0x22 || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

/** RFC 1035 §5.1, §3.3.14: TXT RDATA in presentation form, the text as quoted strings of at most 255 octets each. */
export function txtPresentation(text: string): string {
  return txtStrings(text).map(quoted).join(' ');
}

/** RFC 1035 §3.4.1 (A, 4 octets) and RFC 3596 §2.2 (AAAA, 16 octets) from an address in text form. */
export function addressRdata(ip: string): { type: number; rdata: Buffer } {
  if (isIPv4(ip)) return { type: TYPE.A, rdata: Buffer.from(ip.split('.').map(Number)) };
  if (!isIPv6(ip)) throw new MailmeshError('CONFIG_INVALID', `${JSON.stringify(ip)} is not an IP address`);
  let text = ip.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, v4.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const rdata = Buffer.alloc(16);
  groups.forEach((g, i) => rdata.writeUInt16BE(parseInt(g, 16), i * 2));
  return { type: TYPE.AAAA, rdata };
}

/** RFC 6698 §2.1 (SMIMEA per RFC 8162 §2): usage, selector, matching type, certificate association data. */
export function smimeaRdata(s: { usage: number; selector: number; matchingType: number; data: Buffer }): Buffer {
  return Buffer.concat([Buffer.from([s.usage, s.selector, s.matchingType]), s.data]);
}
