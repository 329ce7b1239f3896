// DNS wire codec (directory/dnswire.ts): a query as it comes off UDP or TCP.
import { encodeHeader, encodeQuestion, parseQuery, readRR } from '../../directory/dnswire.js';
import { invariant, mailmeshError, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'dns-wire',
  description: 'parseQuery and readRR (RFC 1035 §4.1, RFC 6891 OPT) on a raw message',
  maxLen: 1024,
  dictionary: [Buffer.from([0xc0, 0x0c]), Buffer.from([0, 0, 0x29, 0x10, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0, 0xfc, 0, 1]), Buffer.from([0, 0x3d, 0, 1]), Buffer.from([0, 0x35, 0, 1])],
  fuzz(data) {
    // Every record after the header, as far as they parse (the readRR path of other callers).
    for (let pos = 12, n = 0; pos < data.length && n < 64; n++) {
      try {
        pos = readRR(data, pos).end;
      } catch (e) {
        if (!target.expected(e)) throw e;
        break;
      }
    }
    const q = parseQuery(data);
    invariant(q.qname.length <= 255 && q.qname[q.qname.length - 1] === 0, 'qname is a wire name of at most 255 octets');
    // RFC 1035 §4.1.2: the question re-encoded parses back to the same question.
    const again = parseQuery(Buffer.concat([encodeHeader({ id: q.id, flags: q.copyFlags, rcode: 0, qd: 1, an: 0, ns: 0, ar: 0 }), encodeQuestion(q.qname, q.qtype, q.qclass)]));
    invariant(again.key === q.key && again.qtype === q.qtype && again.qclass === q.qclass, 'question round trip');
  },
  expected: mailmeshError('DNS_MALFORMED'),
};
export default target;
