import t from 'tap';
import { CATALOGUE, MailmeshError, type ErrorCode } from '../../../directory/errors.js';
import { replyText } from '../../../gateway/smtp/client.js';
import { replySpec, smtpReply, SMTP_REPLIES } from '../../../gateway/smtp/replies.js';

// RFC 3463 §2: class "." subject "." detail; subject and detail 1 to 3 digits, no leading zeros but 0 itself.
const ENHANCED = /^([245])\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

t.test('every error code maps to a 4xx/5xx reply with a valid enhanced code of the same class and a text', async (t) => {
  for (const code of Object.keys(CATALOGUE) as ErrorCode[]) {
    const spec = replySpec(code);
    t.ok(spec.code >= 400 && spec.code < 600, `${code}: ${spec.code} is 4xx/5xx`);
    const m = ENHANCED.exec(spec.status);
    t.ok(m, `${code}: ${spec.status} is an RFC 3463 code`);
    t.equal(m?.[1], String(spec.code)[0], `${code}: the enhanced code's class is the reply's`);
    t.ok(spec.text.length > 0, `${code}: has a text`);
  }
  for (const code of Object.keys(SMTP_REPLIES)) t.ok(code in CATALOGUE, `${code} is a catalogue code`);
});

t.test('smtpReply fills the slots our code composes, never shows the detail', async (t) => {
  t.same(smtpReply('ENCRYPTION_REQUIRED', { domain: 'peer.test', why: 'no key found for peer.test' }), {
    code: 550,
    lines: ['5.7.1 Encryption to peer.test is required and not possible: no key found for peer.test'],
  });
  t.equal(replyText(smtpReply('LOOKUP_UNAVAILABLE', { domain: 'peer.test' })), '4.4.3 Key discovery for peer.test failed, try again later');
  const e = new MailmeshError('PROCESS_TIMEOUT', 'a library said: ECONNRESET at 0x1234');
  t.same(smtpReply(e), { code: 451, lines: ['4.3.0 Local error in processing, try again later'] });
  t.notMatch(replyText(smtpReply(new MailmeshError('TUNNEL_MALFORMED', 'asn1: bad tag'))), /asn1/, 'a code without an entry: its kind and catalogue text');
  t.equal(smtpReply('ENCRYPTION_REQUIRED').lines[0], '5.7.1 Encryption to  is required and not possible: ', 'a slot without a value stays empty');
});

t.test('the texts on the wire that tests and peers know', async (t) => {
  // code, then the reply as it goes on the wire
  const wire = `
RELAY_DENIED 550 5.7.1 Relaying denied
ROUTE_OTHER 452 4.5.3 Too many recipients for this transaction (another route); send the rest in a new one
ADDRESS_INVALID 501 5.1.3 Bad recipient address syntax
DOMAIN_NO_MAIL 550 5.1.2 The recipient domain accepts no mail
ROUTING_FAILED 451 4.4.3 Routing failure, try again later
NEXT_HOP_UNAVAILABLE 451 4.4.1 Next hop unreachable, try again later
NEXT_HOP_LOST 451 4.4.2 Next hop connection lost, try again later
NEXT_HOP_NO_SMTPUTF8 550 5.6.7 The next hop does not support SMTPUTF8
STORE_UNAVAILABLE 451 4.3.0 The key store is unavailable, try again later
MESSAGE_TOO_BIG 552 5.3.4 Message too big
MAIL_LOOP 554 5.4.6 Mail loop detected (too many Received headers)
INTERNAL 451 4.3.0 Local error in processing, try again later
COMMAND_TOO_LONG 500 5.5.2 Line too long
WEBMAIL_NOT_CONFIGURED 451 4.3.5 WebMail fallback is not configured
`.trim().split('\n').map((l) => [l.slice(0, l.indexOf(' ')) as ErrorCode, l.slice(l.indexOf(' ') + 1)] as const);
  for (const [code, text] of wire) {
    const r = smtpReply(code);
    t.equal(`${r.code} ${replyText(r)}`, text, code);
  }
});
