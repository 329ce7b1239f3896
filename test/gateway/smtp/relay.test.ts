import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Envelope } from '../../../gateway/smtp/smtp.js';
import { run, tempDir } from '../../helpers.js';
import { OUR, Raw, asData, markProcessed, message, show, startGateway, startSink, withoutReceived } from './helpers.js';

t.test('a pipelined transaction relays the processed message; 250 comes only after the sink took it', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let sinkHasIt!: () => void;
  const sinkEntered = new Promise<void>((resolve) => (sinkHasIt = resolve));
  const sink = await startSink(t, {
    beforeReply: () => {
      sinkHasIt();
      return held;
    },
  });
  const envelopes: Envelope[] = [];
  const { port, gw, logs } = await startGateway(t, { inbound: sink }, {
    process: (m, env, signal) => {
      envelopes.push(env);
      t.equal(signal.aborted, false, 'process gets a live AbortSignal');
      return markProcessed(m, env);
    },
  });
  const c = await Raw.open(t, port);
  const ehlo = await c.hello();
  for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'STARTTLS']) t.ok(ehlo.includes(ext), `EHLO offers ${ext}`);
  t.ok(ehlo.some((l) => /^SIZE \d+$/.test(l)), 'EHLO offers SIZE with the limit');
  t.notOk(ehlo.some((l) => l.startsWith('AUTH')), 'no AUTH on the MX listener');

  // RFC 2920: MAIL, RCPTs and DATA in one write.
  const replies = await c.send('MAIL FROM:<a@example.org> SIZE=300', `RCPT TO:<b@${OUR}>`, `RCPT TO:<c@${OUR}>`, 'DATA');
  t.same(replies, ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
  const msg = message('dots', 'line one', '.starts with a dot', '..two dots', '.', 'last line');
  c.write(asData(msg));
  await sinkEntered;
  t.equal(sink.messages.length, 1, 'the sink holds the message');
  t.equal(c.unread, 0, 'the upstream has no reply to the final dot while the sink has not answered');
  release();
  const [final] = await c.read(1);
  t.equal(show(final!), '250 2.0.0 Ok: queued as SINK1', "250 upstream carries the next hop's text");

  const got = sink.messages[0]!;
  t.equal(got.from, 'a@example.org');
  t.same(got.to, [`b@${OUR}`, `c@${OUR}`]);
  t.match(got.data.toString(), /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby gw\.our\.test \(mailmesh\) with ESMTP id /, 'a Received header comes first');
  t.equal(withoutReceived(got.data), `X-Processed: inbound b@${OUR},c@${OUR}\r\n` + msg, 'the sink got the processed bytes, dot-stuffing undone exactly');
  t.match(envelopes[0], { direction: 'inbound', from: 'a@example.org', to: [`b@${OUR}`, `c@${OUR}`], remoteAddress: '127.0.0.1', helo: 'client.test', secure: false });

  // A second transaction in the same session reuses the next-hop connection.
  t.same(await c.send('MAIL FROM:<>', `RCPT TO:<d@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
  c.write(asData(message('second', 'hello')));
  t.equal(show((await c.read(1))[0]!), '250 2.0.0 Ok: queued as SINK2');
  t.equal(sink.messages[1]!.from, '', 'the null reverse-path is kept');
  t.equal(sink.connections, 1, 'one next-hop connection for both transactions');
  t.same(await c.send('QUIT'), ['221 2.0.0 Bye']);
  await Promise.all(sink.closed);
  t.pass('QUIT upstream closes the next-hop session');

  t.equal(gw.stats.messages.inbound.relayed, 2);
  t.equal(gw.stats.recipients.accepted, 3);
  t.equal(gw.stats.nextHop.connects, 1);
  t.equal(gw.stats.nextHop.dataLatencyMs.count, 2);
  const tx = logs.filter((l) => 'outcome' in l);
  t.equal(tx.length, 2, 'one log line per transaction');
  t.match(tx[0], { outcome: 'relayed', direction: 'inbound', from: 'a@example.org', reply: '250 2.0.0 Ok: queued as SINK1', nextHopReply: '250 2.0.0 Ok: queued as SINK1', nextHop: `127.0.0.1:${sink.port}` });
});

t.test('the greeting is not held: a client may talk at once', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink });
  const c = await Raw.open(t, port);
  c.write('EHLO early.test\r\n');
  const [greeting, ehlo] = await c.read(2);
  t.match(show(greeting!), /^220 gw\.our\.test ESMTP mailmesh/);
  t.equal(ehlo!.code, 250, 'an EHLO sent before the greeting is answered, not refused as early talk');
});

t.test('swaks relays through the gateway, with pipelining and with STARTTLS', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink });
  const dir = tempDir(t);
  const body = join(dir, 'msg.eml');
  // swaks turns LF into CRLF itself.
  writeFileSync(body, message('swaks', 'hello from swaks', '.dot line').replace(/\r\n/g, '\n'));
  const base = ['--server', '127.0.0.1', '--port', String(port), '--from', 'x@example.org', '--to', `y@${OUR},z@${OUR}`, '--data', body, '--helo', 'swaks.test'];
  const plain = await run('swaks', [...base, '--pipeline']).then((r) => ({ stdout: r.stdout.toString() }));
  t.match(plain.stdout, /<- {2}250 2\.0\.0 Ok: queued as SINK1/, 'swaks sees the next hop queue id');
  const tls = await run('swaks', [...base, '-tls']).then((r) => ({ stdout: r.stdout.toString() }));
  t.match(tls.stdout, /-> STARTTLS\n<- {2}220 /, 'STARTTLS accepted');
  t.match(tls.stdout, /=== TLS started/);
  t.match(tls.stdout, /<~ {2}250 2\.0\.0 Ok: queued as SINK2/);
  await sink.received(2);
  t.same(sink.messages[1]!.to, [`y@${OUR}`, `z@${OUR}`]);
  t.match(sink.messages[1]!.data.toString(), /with ESMTPS id/, 'the Received header says ESMTPS');
  t.match(withoutReceived(sink.messages[1]!.data), /\r\n\.dot line\r\n/);
});

t.test('SMTPUTF8 and BODY=8BITMIME are passed on; SMTPUTF8 to a next hop without it is refused (RFC 6531)', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink });
  const c = await Raw.open(t, port);
  await c.hello();
  t.same(await c.send('MAIL FROM:<jörg@example.org> SMTPUTF8 BODY=8BITMIME', `RCPT TO:<müller@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
  const msg = message('utf8', 'Grüße aus Köln');
  c.write(asData(msg));
  t.equal(show((await c.read())[0]!), '250 2.0.0 Ok: queued as SINK1');
  t.match(sink.messages[0], { from: 'jörg@example.org', to: [`müller@${OUR}`], smtpUtf8: true, bodyType: '8bitmime' });
  t.equal(withoutReceived(sink.messages[0]!.data), Buffer.from(`X-Processed: inbound müller@${OUR}\r\n${msg}`).toString('latin1'), 'UTF-8 bytes unchanged');

  const plain = await startSink(t, { noUtf8: true });
  const gw2 = await startGateway(t, { inbound: plain });
  const c2 = await Raw.open(t, gw2.port);
  await c2.hello();
  const [, rcpt] = await c2.send('MAIL FROM:<jörg@example.org> SMTPUTF8', `RCPT TO:<b@${OUR}>`);
  t.match(rcpt, /^550 5\.6\.7 /);
});
