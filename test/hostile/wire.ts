// Requests the hostile test sends, built byte by byte.
import { encodeHeader, encodeOpt, encodeQuestion, nameToWire } from '../../directory/dnswire.js';

/** RFC 1035 §4.1: one question, RD set, an OPT record (RFC 6891) when `edns` gives a payload size. */
export function dnsQuery(name: string, qtype: number, o: { id: number; edns?: number }): Buffer {
  const header = encodeHeader({ id: o.id, flags: 0x0100, rcode: 0, qd: 1, an: 0, ns: 0, ar: o.edns ? 1 : 0 });
  return Buffer.concat([header, encodeQuestion(nameToWire(name), qtype), ...(o.edns ? [encodeOpt(o.edns)] : [])]);
}

/** X.690 §8.1: a TLV with a definite length. */
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}

function int(tag: number, n: number): Buffer {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  if (bytes.length === 0 || bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(tag, Buffer.from(bytes));
}

/** RFC 4511 §4.5.1: a subtree SearchRequest for (objectClass=*), every attribute. */
export function ldapSearchRequest(id: number, base: string): Buffer {
  const op = tlv(0x63, Buffer.concat([
    tlv(0x04, Buffer.from(base)), int(0x0a, 2), int(0x0a, 0), int(0x02, 0), int(0x02, 0), Buffer.from([0x01, 1, 0]),
    tlv(0x87, Buffer.from('objectClass')), tlv(0x30, Buffer.alloc(0)),
  ]));
  return tlv(0x30, Buffer.concat([int(0x02, id), op]));
}
