/**
 * The fallbacks `opportunistic` and `tls` (gateway/policy.ts) against real next-hop SMTP servers
 * (smtp-server), one that offers STARTTLS and one that does not, with swaks as the upstream
 * client: opportunistic sends plain mail over STARTTLS when offered (RFC 3207) and in the clear
 * otherwise (RFC 7435); tls defers (451 4.4.1) when the hop offers no STARTTLS.
 */
import t, { type Test } from 'tap';
import { loopbackPair } from '../../cli/demo/loopback.js';
import { selfSignedCertificate } from '../../directory/tls.js';
import type { Fallback } from '../../gateway/policy.js';
import { DEFAULT_POLICY, run } from '../helpers.js';
import { startSink, type Sink } from './smtp/helpers.js';

/** alpha.test with `fallback` for every domain, relaying all outbound mail to `hop`. */
async function alphaWith(t: Test, fallback: Fallback, hop: Sink) {
  const policy = { ...DEFAULT_POLICY, default: { ...DEFAULT_POLICY.default, fallback } };
  const { members, close } = await loopbackPair(['alpha.test', 'beta.test'], { policies: [policy], smarthosts: [hop.port] });
  t.teardown(close);
  return members[0];
}

const swaks = (port: number, to: string, body: string) =>
  run('swaks', ['--server', '127.0.0.1', '--port', String(port), '--helo', 'client.alpha.test', '--from', 'a@alpha.test', '--to', to, '--header', 'Subject: plain report', '--body', body], { allowFail: true });

/** What the gateway put in front of the message it relayed, and whether the body is the one sent. */
function relayed(t: Test, data: Buffer, body: string) {
  const text = data.toString();
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  t.match(head, /^Received: from client\.alpha\.test \(\[127\.0\.0\.1\]\)\r\n\tby \S+ \(mailmesh\) with E?SMTP/, 'our Received header comes first (RFC 5321 §4.4)');
  t.notMatch(head, /^Authentication-Results:/im, 'no Authentication-Results on outbound plain mail: nothing was verified');
  t.notMatch(text, /multipart\/encrypted|application\/pkcs7-mime/, 'not a tunnel message: other.test has no key');
  t.match(head, /^Subject: plain report$/m, 'the real Subject');
  t.ok(text.includes(body), 'the body arrived unchanged');
}

/** One message to other.test (no key anywhere) under `fallback`, relayed to `hop`: what the hop got. */
async function sendPlain(t: Test, fallback: Fallback, hop: Sink, body: string) {
  const alpha = await alphaWith(t, fallback, hop);
  const sent = await swaks(alpha.smtpPort, 'x@other.test', body);
  t.equal(sent.code, 0, sent.stdout.toString());
  await hop.received(1);
  t.same(hop.messages[0]!.to, ['x@other.test']);
  relayed(t, hop.messages[0]!.data, body);
  return hop.messages[0]!;
}

t.test('opportunistic: STARTTLS to a next hop that offers it', async (t) => {
  const hop = await startSink(t, { tls: await selfSignedCertificate(['hop.test']) });
  t.equal((await sendPlain(t, 'opportunistic', hop, 'over TLS when offered')).secure, true, 'the next hop saw a TLS session');
});

t.test('opportunistic: in the clear to a next hop that offers no STARTTLS', async (t) => {
  t.equal((await sendPlain(t, 'opportunistic', await startSink(t), 'in the clear when not')).secure, false, 'a plain session');
});

t.test('tls: STARTTLS to a next hop that offers it, 451 4.4.1 and nothing sent to one that does not', async (t) => {
  const tlsHop = await startSink(t, { tls: await selfSignedCertificate(['hop.test']) });
  t.equal((await sendPlain(t, 'tls', tlsHop, 'TLS required')).secure, true);

  const plainHop = await startSink(t);
  const strict = await alphaWith(t, 'tls', plainHop);
  const refused = await swaks(strict.smtpPort, 'x@other.test', 'never in the clear');
  t.match(refused.stdout.toString(), /<\*\* 451 4\.4\.1/, 'deferred: the upstream keeps the message');
  t.equal(plainHop.messages.length, 0, 'nothing reached the plain hop');
});

t.test('a message with a key still goes encrypted under opportunistic: the fallback is only for domains without one', async (t) => {
  const hop = await startSink(t);
  const alpha = await alphaWith(t, 'opportunistic', hop);
  const sent = await swaks(alpha.smtpPort, 'b@beta.test', 'for beta');
  t.equal(sent.code, 0, sent.stdout.toString());
  await hop.received(1);
  t.match(hop.messages[0]!.data.toString(), /multipart\/encrypted/);
});

t.test('webmail without webmail.enabled: 451 4.3.5, the upstream keeps the message; tls and opportunistic recipients do not share a transaction', async (t) => {
  const hop = await startSink(t);
  const policy = { ...DEFAULT_POLICY, domains: { 'web.test': { fallback: 'webmail' as const }, 'opp.test': { fallback: 'opportunistic' as const } } };
  const { members, close } = await loopbackPair(['alpha.test', 'beta.test'], { policies: [policy], smarthosts: [hop.port] });
  t.teardown(close);
  const web = await swaks(members[0].smtpPort, 'x@web.test', 'x');
  t.match(web.stdout.toString(), /<\*\* 451 4\.3\.5 WebMail fallback is not configured/);
  const both = await run('swaks', ['--server', '127.0.0.1', '--port', String(members[0].smtpPort), '--from', 'a@alpha.test', '--to', 'x@opp.test,y@tls.test', '--quit-after', 'RCPT'], { allowFail: true });
  t.match(both.stdout.toString(), /RCPT TO:<y@tls\.test>\s*\n<\*\* 452 4\.5\.3/, 'the tls recipient comes again in a transaction of its own');
  t.equal(hop.messages.length, 0);
});
