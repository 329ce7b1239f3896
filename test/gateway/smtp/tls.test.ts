import { X509Certificate } from 'node:crypto';
import t, { type Test } from 'tap';
import type { TlsPolicy } from '../../../gateway/smtp/client.js';
import { selfSignedCertificate } from '../../../directory/tls.js';
import { OUR, Raw, asData, message, show, startGateway, startSink, type Sink } from './helpers.js';

const sinkTls = await selfSignedCertificate(['sink.test']);

async function relayVia(t: Test, sink: Sink, hop: { tls: TlsPolicy; ca?: string; servername?: string }) {
  const { port, logs } = await startGateway(t, { inbound: sink }, { route: () => [{ host: '127.0.0.1', port: sink.port, ...hop }] });
  const c = await Raw.open(t, port);
  await c.hello();
  const [mail, rcpt] = await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<b@${OUR}>`);
  t.equal(mail, '250 2.1.0 Accepted');
  if (!rcpt.startsWith('250')) return { rcpt, logs };
  t.same(await c.send('DATA'), ['354 End data with <CR><LF>.<CR><LF>']);
  c.write(asData(message('tls', 'secret')));
  return { rcpt, final: show((await c.read())[0]!), logs };
}

t.test('selfSignedCertificate makes a certificate for the host name', async (t) => {
  const cert = new X509Certificate(sinkTls.cert);
  t.equal(cert.subject, 'CN=sink.test');
  t.match(cert.subjectAltName, 'DNS:sink.test');
  t.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(sinkTls.key)));
});

t.test('tls: may uses STARTTLS when the next hop offers it (certificate not checked)', async (t) => {
  const sink = await startSink(t, { tls: sinkTls });
  const { final, logs } = await relayVia(t, sink, { tls: 'may' });
  t.equal(final, '250 2.0.0 Ok: queued as SINK1');
  t.equal(sink.messages[0]!.secure, true, 'the sink got the message over TLS');
  t.match(logs.find((l) => 'outcome' in l), { nextHopTls: true });
});

t.test('tls: may goes on in plain text when STARTTLS is not offered', async (t) => {
  const sink = await startSink(t);
  const { final } = await relayVia(t, sink, { tls: 'may' });
  t.equal(final, '250 2.0.0 Ok: queued as SINK1');
  t.equal(sink.messages[0]!.secure, false);
});

t.test('tls: encrypt refuses a next hop without STARTTLS (451 at RCPT, the upstream retries)', async (t) => {
  const sink = await startSink(t);
  const { rcpt, logs } = await relayVia(t, sink, { tls: 'encrypt' });
  t.match(rcpt, /^451 4\.4\.1 /);
  t.match(logs.find((l) => 'err' in l), { err: /does not offer STARTTLS/ });
});

t.test('tls: verify checks the certificate against the CA and the name', async (t) => {
  const good = await startSink(t, { tls: sinkTls });
  const ok = await relayVia(t, good, { tls: 'verify', ca: sinkTls.cert, servername: 'sink.test' });
  t.equal(ok.final, '250 2.0.0 Ok: queued as SINK1');
  t.equal(good.messages[0]!.secure, true);

  const unknownCa = await startSink(t, { tls: sinkTls });
  const bad = await relayVia(t, unknownCa, { tls: 'verify', servername: 'sink.test' });
  t.match(bad.rcpt, /^451 4\.4\.1 /, 'a self-signed certificate does not verify against the system CAs');
  t.match(bad.logs.find((l) => 'err' in l), { err: /self[- ]signed/i });

  const wrongName = await startSink(t, { tls: sinkTls });
  const mismatch = await relayVia(t, wrongName, { tls: 'verify', ca: sinkTls.cert, servername: 'other.test' });
  t.match(mismatch.rcpt, /^451 4\.4\.1 /, 'the name must match');
  t.equal(unknownCa.messages.length + wrongName.messages.length, 0);
});
