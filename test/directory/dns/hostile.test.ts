import dgram from 'node:dgram';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { DnsServer } from '../../../directory/dns/dns.js';
import { TcpConnections } from '../../../directory/dns/tcp.js';
import { TYPE } from '../../../directory/dnswire.js';
import { run } from '../../helpers.js';
import { floodAxfr, kdig, memoryDirectory, query, startDns, ZONE } from './helpers.js';

// The DNS face against hostile peers (docs/security/dns.md): faults stay in one request, TCP
// peers that do not read are not buffered for without bound, connection limits and timeouts.

const directory = await memoryDirectory();
await directory.addDomain('example.org');
const here = dirname(fileURLToPath(import.meta.url));

/** One sample of the server's /metrics text (0 when the series is absent). */
async function sample(server: DnsServer, series: string): Promise<number> {
  const line = (await server.metrics.render()).split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Frames a DNS message for TCP (RFC 1035 §4.2.2). */
const framed = (msg: Buffer) => Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]);

/** Resolves when the server closes this socket (or rejects after `limitMs`, so a test cannot hang). */
function closed(sock: net.Socket, limitMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not close the connection')), limitMs);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Waits (bounded) until the server-side state `ok` describes is reached. */
async function until(ok: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 25));
  if (!(await ok())) throw new Error('condition not reached');
}

t.test('a datagram from source port 0 (sent through a raw socket) is a fault of that datagram alone', async (t) => {
  const { port, server } = await startDns(t, directory);
  // RFC 768: source port 0 means "no reply expected"; answering it made dgram.send throw outside any handler.
  await run('python3', [join(here, 'raw-udp.py'), '127.0.0.1', String(port), '0', query(ZONE, TYPE.SOA).toString('hex')]);
  // The datagram has been handled once the server answers a later one (one socket, in order).
  const after = await kdig(port, [ZONE, 'SOA']);
  t.equal(after.status, 'NOERROR', 'the server still answers over UDP');
  t.equal((await kdig(port, [ZONE, 'SOA', '+tcp'])).status, 'NOERROR', 'and over TCP');
  t.equal(await sample(server, 'mailmesh_faults_total{face="dns"}'), 1, 'the fault is counted as mailmesh_faults_total{face="dns"}');
});

t.test('TCP: a fault while answering ends that connection alone; the listener goes on', async (t) => {
  const faults: object[] = [];
  const conns = new TcpConnections({}, {
    // A message with ID 666 makes answering fail; others are answered (with their header).
    respond: (msg) => {
      if (msg.readUInt16BE(0) === 666) throw new Error('boom');
      return [msg.subarray(0, 12)];
    },
    fault: (err, context) => faults.push({ err: (err as Error).message, ...context }),
    event: () => {},
  });
  const server = net.createServer((s) => conns.accept(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => (conns.closeAll(), server.close(() => r()))));
  const port = (server.address() as net.AddressInfo).port;
  for (let i = 0; i < 2; i++) {
    const sock = net.connect(port, '127.0.0.1');
    sock.write(framed(query(ZONE, TYPE.SOA, { id: 666 })));
    await closed(sock);
  }
  t.equal(faults.length, 2, 'one fault per connection');
  t.match(faults[0], { err: 'boom', where: 'tcp answer' });
  const ok = net.connect(port, '127.0.0.1');
  const reply = new Promise<Buffer>((r) => ok.once('data', r));
  ok.write(framed(query(ZONE, TYPE.SOA, { id: 5 })));
  t.equal((await reply).readUInt16BE(2), 5, 'a later connection is answered');
  ok.destroy();
});

t.test('TCP: connections per client address and in total are limited', async (t) => {
  const { port, server } = await startDns(t, directory, { tcp: { maxConnectionsPerAddress: 2 } });
  const open = async () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    t.teardown(() => void s.destroy());
    return s;
  };
  const [a, b] = [await open(), await open()];
  const third = await open();
  await closed(third);
  t.equal(await sample(server, 'mailmesh_dns_tcp_limits_total{limit="per_client"}'), 1, 'the third connection of one address is closed at once');
  // The first two still work.
  for (const s of [a, b]) {
    const reply = new Promise<Buffer>((r) => s.once('data', r));
    s.write(framed(query(ZONE, TYPE.SOA, { id: 77 })));
    t.equal((await reply).readUInt16BE(2), 77);
  }
  a.destroy();
  b.destroy();
  await until(async () => (await sample(server, 'mailmesh_dns_tcp_connections')) === 0);
  const again = await open();
  const reply = new Promise<Buffer>((r) => again.once('data', r));
  again.write(framed(query(ZONE, TYPE.SOA, { id: 78 })));
  t.equal((await reply).readUInt16BE(2), 78, 'a closed connection frees its place');

  const total = await startDns(t, directory, { tcp: { maxConnections: 1 } });
  const first = net.connect(total.port, '127.0.0.1');
  await new Promise((r) => first.once('connect', r));
  t.teardown(() => void first.destroy());
  const second = net.connect(total.port, '127.0.0.1');
  second.on('error', () => {});
  await closed(second);
  t.equal(await sample(total.server, 'mailmesh_dns_tcp_limits_total{limit="total"}'), 1, 'past the total, new connections are closed');
});

t.test('TCP: idle connections and connections past their lifetime are closed', async (t) => {
  const { port, server } = await startDns(t, directory, { tcp: { idleTimeoutMs: 200, maxLifetimeMs: 600_000 } });
  const idle = net.connect(port, '127.0.0.1');
  await closed(idle);
  t.equal(await sample(server, 'mailmesh_dns_tcp_limits_total{limit="idle"}'), 1, 'idle: closed');

  const long = await startDns(t, directory, { tcp: { idleTimeoutMs: 60_000, maxLifetimeMs: 300 } });
  const busy = net.connect(long.port, '127.0.0.1');
  // Writing on while the server closes may earn a reset (ECONNRESET): that is the close, not a failure.
  busy.on('error', () => {});
  const done = closed(busy);
  // A client that keeps asking is closed all the same when its lifetime is over.
  let answers = 0;
  busy.on('data', () => answers++);
  const ask = setInterval(() => busy.writable && busy.write(framed(query(ZONE, TYPE.SOA))), 20);
  await done;
  clearInterval(ask);
  t.ok(answers > 0, `it was answered while it lived (${answers})`);
  t.equal(await sample(long.server, 'mailmesh_dns_tcp_limits_total{limit="lifetime"}'), 1, 'lifetime: closed');
});

t.test('TCP: a client that never reads stops being read once its backlog passes maxPendingBytes, and is closed when it does not drain', async (t) => {
  const maxPendingBytes = 256 * 1024;
  const { port, server } = await startDns(t, directory, { axfrMessageSize: 1024, tcp: { maxPendingBytes, drainTimeoutMs: 1000 } });
  const axfr = framed(query(ZONE, TYPE.AXFR));
  const zoneBytes = (await kdig(port, ['AXFR', ZONE])).out.match(/Received (\d+) B/)![1]!;
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  sock.pause(); // never reads (and so does not see the server close it either: the counters tell)
  t.teardown(() => void sock.destroy());
  // 20,000 transfers asked for (≈ 20000 × zone size, >100 MB of answers), none read.
  sock.write(Buffer.concat(Array.from({ length: 20_000 }, () => axfr)));
  let most = 0;
  const watch = setInterval(() => void sample(server, 'mailmesh_dns_tcp_pending_bytes').then((n) => (most = Math.max(most, n))), 10);
  await until(async () => (await sample(server, 'mailmesh_dns_tcp_limits_total{limit="drain"}')) === 1 && (await sample(server, 'mailmesh_dns_tcp_connections')) === 0);
  clearInterval(watch);
  // One AXFR message (≤ axfrMessageSize + framing) may go past the bound before the connection stops.
  t.ok(most <= maxPendingBytes + 2048, `queued at most ${most} octets (bound ${maxPendingBytes} + one message; one transfer is ${zoneBytes} B)`);
  t.ok(most > 0, 'and it did queue');
  t.equal(await sample(server, 'mailmesh_dns_tcp_limits_total{limit="drain"}'), 1, 'closed because it did not drain');
  t.equal(await sample(server, 'mailmesh_dns_tcp_pending_bytes'), 0, 'nothing is held for it after the close');
  t.equal((await kdig(port, [ZONE, 'SOA', '+tcp'])).status, 'NOERROR', 'others are answered');
});

t.test('TCP: a slow reader gets the whole of a large answer stream (backpressure loses nothing)', async (t) => {
  const { port } = await startDns(t, directory, { axfrMessageSize: 512, tcp: { maxPendingBytes: 8 * 1024 } });
  const sock = net.connect(port, '127.0.0.1');
  const n = 200;
  sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => framed(query(ZONE, TYPE.AXFR, { id: i })))));
  let buf = Buffer.alloc(0);
  let soas = 0;
  const ids = new Set<number>();
  await new Promise<void>((resolve) => {
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + m.length);
        ids.add(m.readUInt16BE(0));
        // Count SOA records in the answer section: two per transfer (first and last).
        soas += m.toString('latin1').split(String.fromCharCode(0, 6, 0, 1)).length - 1;
      }
      if (soas >= 2 * n) resolve();
      // Read slowly: pause the socket now and then.
      sock.pause();
      setImmediate(() => sock.resume());
    });
  });
  sock.destroy();
  t.equal(ids.size, n, `every one of ${n} transfers answered`);
  t.equal(soas, 2 * n, 'each complete (SOA first and last)');
});

t.test('UDP response-rate limiting: a token bucket per /24, every slip-th dropped answer sent truncated', async (t) => {
  let now = Date.parse('2026-12-01T00:00:00Z');
  const { port, server } = await startDns(t, directory, { clock: () => new Date(now), rrl: { responsesPerSecond: 10, burst: 20, slip: 2 } });
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => client.close());
  // A probe from another /24 (127.0.1.0/24, also loopback) has a bucket of its own; its answer
  // also tells that every datagram sent before it has been handled.
  const other = dgram.createSocket('udp4');
  await new Promise<void>((r) => other.bind(0, '127.0.1.1', () => r()));
  t.teardown(() => other.close());
  const got: Buffer[] = [];
  client.on('message', (m) => got.push(m));
  const probe = async () => {
    const answer = new Promise<Buffer>((r) => other.once('message', r));
    other.send(query(ZONE, TYPE.SOA, { id: 0xbeef }), port, '127.0.0.1');
    const a = await answer;
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    return a;
  };
  const burst = async (count: number) => {
    got.length = 0;
    for (let i = 0; i < count; i++) client.send(query(`example.org.${ZONE}`, TYPE.OPENPGPKEY, { id: i, edns: 1232 }), port, '127.0.0.1');
    const p = await probe();
    t.equal(p.readUInt16BE(6), 1, 'the other prefix is answered in full');
    const tc = got.filter((m) => m.readUInt16BE(2) & 0x0200);
    return { full: got.length - tc.length, tc };
  };
  const first = await burst(100);
  t.equal(first.full, 20, 'the burst is answered in full');
  t.equal(first.tc.length, 40, 'of the 80 over the limit, every 2nd is sent truncated');
  t.ok(first.tc.every((m) => m.readUInt16BE(6) === 0 && m.readUInt16BE(10) === 0 && m.length < 60), 'truncated: header and question only');
  t.equal(await sample(server, 'mailmesh_dns_rrl_total{action="drop"}'), 40, 'drops counted');
  t.equal(await sample(server, 'mailmesh_dns_rrl_total{action="slip"}'), 40, 'slips counted');
  now += 1000;
  const second = await burst(20);
  t.equal(second.full, 10, 'a second later, 10 more (the rate)');
});

t.test('RRL slip: a real client (kdig) retries a truncated answer over TCP; exempt addresses are not limited', async (t) => {
  const { port } = await startDns(t, directory, { clock: () => new Date(0), rrl: { responsesPerSecond: 1, burst: 1, slip: 1 } });
  t.equal((await kdig(port, [ZONE, 'SOA'])).via, 'UDP', 'the first answer comes over UDP');
  const second = await kdig(port, [ZONE, 'SOA']);
  t.match(second.err, /truncated reply .* retrying over TCP/, 'the next is truncated');
  t.equal(second.via, 'TCP');
  t.equal(second.answers.length, 1, 'and answered over TCP');
  const exempt = await startDns(t, directory, { clock: () => new Date(0), rrl: { responsesPerSecond: 1, burst: 1, slip: 1, exempt: ['127.0.0.0/8'] } });
  for (let i = 0; i < 3; i++) t.equal((await kdig(exempt.port, [ZONE, 'SOA'])).via, 'UDP', `exempt: answer ${i + 1} over UDP`);
});

t.test('TCP: after never-reading clients close, the memory queued for them is released (once V8 collects it)', async (t) => {
  // The test forces the collection (V8's gc(), exposed to this process only). Measured are the
  // Buffers the process holds (memoryUsage().arrayBuffers): RSS after a collection says more about
  // what the allocator keeps for reuse (serve.test.ts shows that a second flood reuses it).
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const MiB = 1024 * 1024;
  const { port, server } = await startDns(t, directory);
  await kdig(port, ['AXFR', ZONE]);
  gc();
  const held = () => process.memoryUsage().arrayBuffers;
  const baseline = held();
  const socks = floodAxfr({ host: '127.0.0.1', port }, 4, 20_000);
  t.teardown(() => socks.forEach((s) => s.destroy()));
  // Each of the four is stopped past dns.maxPendingBytes (4 MiB).
  await until(async () => (await sample(server, 'mailmesh_dns_tcp_pending_bytes')) >= 4 * 4 * MiB);
  gc();
  const during = held();
  socks.forEach((s) => s.destroy());
  await until(async () => (await sample(server, 'mailmesh_dns_tcp_connections')) === 0);
  // The last write requests are let go when libuv cancels them, a turn or two after the close.
  await until(() => (gc(), held() - baseline < 2 * MiB));
  const after = held();
  t.ok(after - baseline < 2 * MiB, `after the close: ${((after - baseline) / MiB).toFixed(2)} MiB above the baseline of ${(baseline / MiB).toFixed(1)} MiB (< 2 MiB)`);
  t.ok(during - after >= 16 * MiB, `${((during - after) / MiB).toFixed(1)} MiB held for the four clients while they were open, released with them`);
});
