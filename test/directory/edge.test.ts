import net from 'node:net';
import t, { type Test } from 'tap';
import { clientAddress, EdgeGuard, edgeLimits, ipMatcher } from '../../directory/edge.js';
import { Metrics } from '../../directory/metrics.js';

/** A TCP server on 127.0.0.1:0 whose connections go through `guard`; refused ones are closed at once. */
async function guarded(t: Test, guard: EdgeGuard, onSocket: (s: net.Socket) => void = () => {}) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    if (guard.admit(s)) s.destroy();
    else onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as net.AddressInfo).port;
  const open = async () => {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    const closed = new Promise<void>((r) => c.on('close', () => r()));
    await new Promise((r) => c.once('connect', r));
    t.teardown(() => void c.destroy());
    return { c, closed };
  };
  return { open };
}

t.test('EdgeGuard: the total limit refuses the connection over it; a closed one frees its slot', async (t) => {
  const guard = new EdgeGuard('ldap', { maxConnections: 2, maxConnectionsPerAddress: 0 });
  const accepted: net.Socket[] = [];
  const { open } = await guarded(t, guard, (s) => accepted.push(s));
  const a = await open();
  await open();
  const third = await open();
  await third.closed;
  t.pass('the third connection was closed by the server');
  a.c.destroy();
  await new Promise<void>((r) => accepted[0]!.once('close', () => r()));
  t.equal(guard.open, 1, 'the closed connection is uncounted');
  const fourth = await open();
  fourth.c.write('x');
  await new Promise((r) => setImmediate(r));
  t.equal(guard.open, 2, 'a new one takes the slot');
});

t.test('EdgeGuard: maxLifetimeMs closes a connection whatever it does', async (t) => {
  const guard = new EdgeGuard('smtp', { maxLifetimeMs: 200 });
  const { open } = await guarded(t, guard);
  const { c, closed } = await open();
  const talk = setInterval(() => c.writable && c.write('NOOP\r\n'), 20);
  await closed;
  clearInterval(talk);
  t.pass('closed by the server although it kept talking');
});

t.test('EdgeGuard.stall: a reader that drains keeps its connection, one that never reads is closed', async (t) => {
  const guard = new EdgeGuard('http', { drainTimeoutMs: 300 });
  const servers: net.Socket[] = [];
  const { open } = await guarded(t, guard, (s) => servers.push(s));
  const reader = await open();
  let got = 0;
  const all = new Promise<void>((r) => reader.c.on('data', (d: Buffer) => (got += d.length) >= 32 * 1024 * 1024 && r()));
  while (servers.length < 1) await new Promise((r) => setImmediate(r));
  servers[0]!.write(Buffer.alloc(32 * 1024 * 1024));
  guard.stall(servers[0]!);
  await all;
  await new Promise((r) => setTimeout(r, 600));
  t.notOk(servers[0]!.destroyed, 'drained: the connection stays (two timeouts later)');

  const idle = await open();
  idle.c.pause();
  while (servers.length < 2) await new Promise((r) => setImmediate(r));
  servers[1]!.write(Buffer.alloc(32 * 1024 * 1024));
  guard.stall(servers[1]!);
  // A paused client cannot see the close: watch the server's side.
  for (let i = 0; i < 200 && !servers[1]!.destroyed; i++) await new Promise((r) => setTimeout(r, 50));
  t.ok(servers[1]!.destroyed, 'a client that never reads is closed');
});

t.test('faults are counted per face and logged; a peer that hung up is logged at debug', async (t) => {
  const metrics = new Metrics();
  const logged: string[] = [];
  const guard = new EdgeGuard('ldap', {}, { metrics, logger: { warn: () => logged.push('warn'), debug: () => logged.push('debug') } });
  guard.fault(new Error('a bug'));
  guard.fault(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
  t.equal(metrics.counter('mailmesh_faults_total', '').get({ face: 'ldap' }), 2);
  t.same(logged, ['warn', 'debug']);
  t.match(await metrics.render(), /mailmesh_faults_total\{face="ldap"\} 2/);
});

t.test('addresses and settings', async (t) => {
  t.equal(clientAddress('::ffff:192.0.2.1'), '192.0.2.1', 'IPv4-mapped IPv6 is the IPv4 client');
  t.equal(clientAddress('2001:db8::1'), '2001:db8::1');
  t.ok(ipMatcher(['192.0.2.0/24'])('::ffff:192.0.2.9'));
  t.same(edgeLimits({ drainTimeoutSec: 2, maxConnections: 3, maxConnectionsPerAddress: 4, maxLifetimeSec: 5 }), {
    maxPendingBytes: 4 * 1024 * 1024, drainTimeoutMs: 2000, maxConnections: 3, maxConnectionsPerAddress: 4, maxLifetimeMs: 5000,
  }, 'seconds to ms; maxPendingBytes defaults where a face has none');
});
