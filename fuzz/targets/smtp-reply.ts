// The next hop's replies (gateway/smtp/client.ts ReplyParser), cut into chunks as TCP may, and
// DATA dot-stuffing of a message (dotStuff).
import { dotStuff, ReplyParser } from '../../gateway/smtp/client.js';
import { invariant, mailmeshError, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'smtp-reply',
  description: 'ReplyParser.push over chunks (RFC 5321 §4.2) and dotStuff (§4.5.2)',
  maxLen: 16384,
  dictionary: ['\r\n', '\n', '250-', '250 ', '220 ', '354 ', '421 ', '550 5.7.1 ', 'PIPELINING', 'STARTTLS', '8BITMIME', 'SIZE 10240000', '\r\n.\r\n', '.'],
  fuzz(data) {
    const stuffed = dotStuff(data);
    invariant(stuffed.subarray(-5).toString('latin1') === '\r\n.\r\n' || stuffed.toString('latin1') === '.\r\n', 'DATA ends with CRLF . CRLF');
    const p = new ReplyParser();
    // The first byte picks the chunk size: the parser must not depend on where TCP cuts.
    const size = 1 + ((data[0] ?? 0) % 64);
    for (let i = 1; i < data.length; i += size) {
      for (const r of p.push(data.subarray(i, i + size))) invariant(r.code >= 200 && r.code <= 599 && r.lines.length >= 1, 'a reply has a 2xx–5xx code and a line');
    }
  },
  expected: mailmeshError('NEXT_HOP_PROTOCOL'),
};
export default target;
