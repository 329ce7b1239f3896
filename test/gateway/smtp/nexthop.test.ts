import net, { type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { SmtpClient } from '../../../gateway/smtp/client.js';
import { OUR, Raw, startGateway, startSink } from './helpers.js';

/**
 * A scripted next hop for misbehaviour smtp-server cannot show: `answer(line)` gives the raw
 * bytes to send back for each command line ('close' hangs up). It greets and answers EHLO itself.
 */
async function scripted(t: Test, answer: (line: string) => string | 'close'): Promise<number> {
  const server = net.createServer((s) => {
    s.write('220 scripted.test ESMTP\r\n');
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (/^EHLO /i.test(line)) s.write('250-scripted.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
        else if (/^QUIT/i.test(line)) s.end('221 bye\r\n');
        else {
          const a = answer(line);
          if (a === 'close') return void s.destroy();
          s.write(a);
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

async function rcptReplies(t: Test, port: number, ...rcpts: string[]): Promise<string[]> {
  const { port: gw } = await startGateway(t, { inbound: { port } as never }, { route: () => [{ host: '127.0.0.1', port, tls: 'none' }] });
  const c = await Raw.open(t, gw);
  await c.hello();
  const [mail, ...rest] = await c.send('MAIL FROM:<a@example.org>', ...rcpts.map((r) => `RCPT TO:<${r}>`));
  t.equal(mail, '250 2.1.0 Accepted');
  return rest;
}

t.test('the next hop refuses MAIL FROM: every recipient of that route gets its reply', async (t) => {
  const port = await scripted(t, (l) => (l.startsWith('MAIL') ? '550 5.7.1 sender blocked\r\n' : '250 ok\r\n'));
  t.same(await rcptReplies(t, port, `a@${OUR}`, `b@${OUR}`), ['550 5.7.1 sender blocked', '550 5.7.1 sender blocked']);
});

t.test('the next hop hangs up during RCPT: 451 4.4.2, and no later recipient of the transaction is accepted', async (t) => {
  let n = 0;
  const port = await scripted(t, (l) => (l.startsWith('RCPT') && ++n === 2 ? 'close' : '250 2.1.5 ok\r\n'));
  const [first, second, third] = await rcptReplies(t, port, `a@${OUR}`, `b@${OUR}`, `c@${OUR}`);
  t.equal(first, '250 2.1.5 Accepted');
  t.match(second, /^451 4\.4\.2 /);
  t.match(third, /^451 4\.4\.2 /, 'the accepted recipient is on a dead connection: nothing more is accepted');
});

t.test('a reply that is no SMTP, or a 3yz to RCPT: 451 4.4.2', async (t) => {
  const garbage = await scripted(t, (l) => (l.startsWith('RCPT') ? 'HTTP/1.1 400 Bad Request\r\n' : '250 ok\r\n'));
  t.match((await rcptReplies(t, garbage, `a@${OUR}`))[0], /^451 4\.4\.2 /);
  const odd = await scripted(t, (l) => (l.startsWith('RCPT') ? '354 go ahead?\r\n' : '250 ok\r\n'));
  t.match((await rcptReplies(t, odd, `a@${OUR}`))[0], /^451 4\.4\.2 /);
});

t.test('an address literal is not a domain we route: 501 5.1.3', async (t) => {
  const sink = await startSink(t);
  const [r] = await rcptReplies(t, sink.port, 'user@[127.0.0.1]');
  t.match(r, /^501 5\.1\.3 /);
});

t.test('SmtpClient: HELO fallback, refused greeting, unsolicited reply, timeouts', async (t) => {
  // A server without EHLO (RFC 5321 §3.2): 502 to EHLO, then HELO.
  const old = net.createServer((s) => {
    s.write('220 old.test SMTP\r\n');
    s.on('data', (c: Buffer) => {
      const line = c.toString();
      if (line.startsWith('EHLO')) s.write('502 5.5.1 what?\r\n');
      else if (line.startsWith('HELO')) s.write('250 old.test\r\n');
      else if (line.startsWith('NOOP')) s.write('250 ok\r\n');
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => old.close(() => resolve())));
  const client = await SmtpClient.connect({ host: '127.0.0.1', port: (old.address() as AddressInfo).port, helo: 'me.test', tls: 'may' });
  t.equal(client.capabilities.size, 0, 'no extensions after HELO');
  t.equal(client.secure, false);
  client.close();

  const refusing = net.createServer((s) => s.end('554 5.3.2 go away\r\n'));
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => refusing.close(() => resolve())));
  await t.rejects(SmtpClient.connect({ host: '127.0.0.1', port: (refusing.address() as AddressInfo).port, helo: 'me.test' }), { code: 'NEXT_HOP_REFUSED' });

  const silent = net.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => silent.close(() => resolve())));
  await t.rejects(SmtpClient.connect({ host: '127.0.0.1', port: (silent.address() as AddressInfo).port, helo: 'me.test', timeouts: { connect: 200 } }), { code: 'NEXT_HOP_TIMEOUT' });

  // RFC 5321 §3.8: a 421 without a command ends the session (here it comes right behind the EHLO reply).
  const chatty = net.createServer((s) => {
    s.write('220 chatty.test\r\n');
    s.on('data', () => s.write('250 chatty.test\r\n421 4.3.2 shutting down\r\n'));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => chatty.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => chatty.close(() => resolve())));
  const c2 = await SmtpClient.connect({ host: '127.0.0.1', port: (chatty.address() as AddressInfo).port, helo: 'me.test' });
  t.equal(c2.usable, false, 'not reused');
  await t.rejects(c2.rset(), { code: 'NEXT_HOP_UNAVAILABLE', message: /without being asked 421/ });
  await c2.quit();
});

t.test("the next hop's 421 reaches the upstream as 451, and the upstream session stays open", async (t) => {
  const port = await scripted(t, (l) => (l.startsWith('RCPT') ? '421 4.3.2 shutting down\r\n' : '250 ok\r\n'));
  const { port: gw } = await startGateway(t, { inbound: { port } as never }, { route: () => [{ host: '127.0.0.1', port, tls: 'none' }] });
  const c = await Raw.open(t, gw);
  await c.hello();
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<a@${OUR}>`, 'NOOP'), ['250 2.1.0 Accepted', '451 4.3.2 shutting down', '250 2.0.0 OK']);
});
