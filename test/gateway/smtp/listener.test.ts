import type { AddressInfo, default as net } from 'node:net';
import tls from 'node:tls';
import type { SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';
import t, { type Test } from 'tap';
import { EdgeGuard } from '../../../directory/edge.js';
import { selfSignedCertificate } from '../../../directory/tls.js';
import { ReplyParser, SmtpClient, type Reply } from '../../../gateway/smtp/client.js';
import { Listener, type ListenerOptions } from '../../../gateway/smtp/listener.js';
import { floodNeverReading } from '../../edges/helpers.js';
import { Raw, show } from './helpers.js';

// The contract of gateway/smtp/listener.ts, the one file that relies on smtp-server's internals:
// each test fails if an smtp-server release changes what an override depends on.

const NAME = 'listener.test';

async function start(t: Test, over: Partial<ListenerOptions> = {}): Promise<{ port: number; listener: Listener }> {
  const pair = await selfSignedCertificate([NAME], new Date());
  const listener = new Listener({
    name: NAME,
    banner: 'contract',
    key: pair.key,
    cert: pair.cert,
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH'],
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: false,
    // Only what a test asks for closes a connection, never the idle timeout.
    socketTimeout: 600_000,
    // As the gateway's: smtp-server's own onConnect answers a tick later, and a command that
    // came before would be early talk.
    onConnect(_session, cb) {
      cb();
    },
    closeTimeout: 100,
    ...over,
  });
  listener.on('error', () => undefined);
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => listener.close(() => resolve())));
  return { port: (listener.server.address() as AddressInfo).port, listener };
}

t.test('the members listener.ts overrides or calls exist on SMTPConnection', async (t) => {
  for (const name of ['_resetSession', '_setListeners', 'connectionReady', '_createParser', '_onClose', 'send', 'init'] as const) {
    t.equal(typeof SMTPConnection.prototype[name], 'function', name);
  }
});

t.test('the greeting is immediate: a command sent before it is answered, not refused as early talk', async (t) => {
  const { port } = await start(t);
  const c = await Raw.open(t, port);
  c.write('EHLO early.test\r\n');
  // Early talk is answered with 421 and the connection closed.
  const [greeting, ehlo] = await Promise.race([c.read(2), c.closed.then(() => [])]);
  t.match(greeting && show(greeting), new RegExp(`^220 ${NAME} ESMTP contract`));
  t.equal(ehlo?.code, 250);
});

t.test('maxClients is checked before the greeting, with smtp-server reply', async (t) => {
  const { port } = await start(t, { maxClients: 1 });
  const first = await Raw.open(t, port);
  await first.hello();
  const second = await Raw.open(t, port);
  const [r] = await second.read(1);
  t.equal(show(r!), `421 ${NAME} Too many connected clients, try again in a moment`);
  await second.closed;
});

t.test('a command line over maxCommandLength gets 500 5.5.2 and the session ends', async (t) => {
  const { port } = await start(t, { maxCommandLength: 510 });
  const c = await Raw.open(t, port);
  await c.hello();
  c.write(`NOOP ${'x'.repeat(600)}\r\n`);
  const [r] = await c.read(1);
  t.equal(show(r!), '500 5.5.2 Line too long');
  await c.closed;
});

t.test('a reply text that starts with an enhanced code is sent as it is; others get one', async (t) => {
  const { port } = await start(t, {
    onRcptTo(address, _session, cb) {
      const text = address.address.startsWith('coded') ? '5.7.1 Not for you' : 'Not for you';
      cb(Object.assign(new Error(text), { responseCode: 550 }));
    },
  });
  const c = await Raw.open(t, port);
  await c.hello();
  const [mail, coded, bare] = await c.send('MAIL FROM:<a@x.test>', 'RCPT TO:<coded@y.test>', 'RCPT TO:<bare@y.test>');
  t.match(mail, /^250 /);
  t.equal(coded, '550 5.7.1 Not for you', 'not doubled');
  t.match(bare, /^550 5\.\d+\.\d+ Not for you$/, 'one enhanced code of smtp-server');
});

t.test('onReset is called for RSET, HELO/EHLO, the end of DATA and STARTTLS', async (t) => {
  const resets = new Map<string, number>();
  const { port } = await start(t, {
    onReset(session: SMTPServerSession) {
      resets.set(session.id, (resets.get(session.id) ?? 0) + 1);
    },
  });
  const c = await Raw.open(t, port);
  await c.hello();
  const count = () => [...resets.values()].reduce((a, b) => a + b, 0);
  const after = async (what: string, ...lines: string[]) => {
    const before = count();
    await c.send(...lines);
    t.equal(count(), before + 1, what);
  };
  await after('RSET', 'MAIL FROM:<a@x.test>', 'RSET');
  await after('EHLO', 'EHLO again.test');
  await after('HELO', 'HELO again.test');
  c.write('MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n');
  t.same((await c.read(3)).map((r) => r.code), [250, 250, 354]);
  await after('the end of DATA', 'Subject: x\r\n\r\nbody\r\n.');
  t.equal(resets.size, 1, 'one session');

  await c.send('EHLO tls.test');
  const before = count();
  t.match((await c.send('STARTTLS'))[0], /^220 /);
  const secure = tls.connect({ socket: c.socket, rejectUnauthorized: false, servername: NAME });
  await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
  t.teardown(() => void secure.destroy());
  const parser = new ReplyParser();
  const replies: Reply[] = [];
  const noop = new Promise<void>((resolve) =>
    secure.on('data', (d: Buffer) => {
      replies.push(...parser.push(d));
      if (replies.length) resolve();
    }),
  );
  secure.write('NOOP\r\n');
  await noop;
  t.equal(replies[0]!.code, 250);
  t.equal(count(), before + 1, 'STARTTLS');
});

t.test('a client that never reads its replies is closed after drainTimeoutMs', async (t) => {
  const guard = new EdgeGuard('smtp', { drainTimeoutMs: 300 });
  const { port, listener } = await start(t, { guard });
  // The server's side of the connection: a paused client would not see its FIN.
  const closed = new Promise<void>((resolve) => listener.server.once('connection', (socket: net.Socket) => socket.once('close', () => resolve())));
  // EHLO: a short command with a long reply, so the replies outgrow the kernel's socket buffers.
  const flood = await floodNeverReading(port, Buffer.from('EHLO flood.test\r\n'), 3 * 1024 * 1024, '');
  t.teardown(() => void flood.socket.destroy());
  t.match(flood.answer, /^220 /);
  await closed;
  t.pass('closed by the server');
});

t.test('the guard refuses connections over its limits with the table reply 421 4.7.0', async (t) => {
  const guard = new EdgeGuard('smtp', { maxConnectionsPerAddress: 1 });
  const { port } = await start(t, { guard });
  const first = await Raw.open(t, port);
  await first.hello();
  const second = await Raw.open(t, port);
  const [r] = await second.read(1);
  t.equal(show(r!), `421 4.7.0 ${NAME} Too many connections from your address, try again later`);
  await second.closed;
});

t.test('a STARTTLS session leaves the guard\'s count when it ends (smtp-server takes the accepted socket\'s listeners away)', async (t) => {
  const guard = new EdgeGuard('smtp', { maxConnectionsPerAddress: 2 });
  // smtp-server calls onClose after the connection's own close handling: the count is settled by then.
  let closed = 0;
  let wake = () => {};
  const ended = async (n: number) => {
    while (closed < n) await new Promise<void>((resolve) => (wake = resolve));
  };
  const { port } = await start(t, { guard, onClose: () => (closed++, wake()) });
  // Sequential sessions from one address, each upgraded to TLS and ended: 2 at once are never open.
  for (let i = 1; i <= 4; i++) {
    const c = await SmtpClient.connect({ host: '127.0.0.1', port, helo: 'tls.test', tls: 'encrypt' });
    t.equal(c.greeting.code, 220, `session ${i}: greeted, not refused (${c.greeting.lines.join(' ')})`);
    t.ok(c.secure, `session ${i}: STARTTLS`);
    await c.quit();
    await ended(i);
    t.equal(guard.open, 0, `session ${i}: uncounted once it ended`);
  }
  // A session cut off right after STARTTLS, before the handshake, is uncounted too.
  const raw = await Raw.open(t, port);
  await raw.hello();
  raw.write('STARTTLS\r\n');
  const [ready] = await raw.read(1);
  t.equal(ready?.code, 220);
  raw.socket.destroy();
  await ended(5);
  t.equal(guard.open, 0, 'a handshake cut short is uncounted');
});
