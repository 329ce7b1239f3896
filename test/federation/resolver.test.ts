import dgram from 'node:dgram';
import net from 'node:net';
import t from 'tap';
import type { Test } from 'tap';
import { encodeHeader, encodeOpt, encodeRR, FLAG, HEADER_SIZE, readName, txtRdata, TYPE } from '../../directory/dnswire.js';
import { isLoopback, lookupRecords, stubResolver, txtText } from '../../federation/dns.js';
import { rejectsCode } from '../helpers.js';

/**
 * The discovery resolver against an off-path attacker (RFC 5452): replies are matched on
 * source address, port, ID and question, the query name carries 0x20 case randomisation,
 * TC goes to TCP with a deadline, and AD counts only from loopback when configured.
 * Real sockets on loopback; the "servers" are hand-written so they can misbehave.
 */

interface Asked {
  id: number;
  /** The question section exactly as sent (name in the case the client chose, type, class). */
  question: Buffer;
  name: Buffer;
  type: number;
  from: dgram.RemoteInfo;
}

function parseAsked(m: Buffer, from: dgram.RemoteInfo): Asked {
  const q = readName(m, HEADER_SIZE);
  return { id: m.readUInt16BE(0), question: m.subarray(HEADER_SIZE, q.end + 4), name: q.name, type: m.readUInt16BE(q.end), from };
}

/** A reply to `a` with one TXT answer (the owner a pointer to the question), flags as given. */
function reply(a: Asked, text: string, o: { question?: Buffer; flags?: number; id?: number } = {}): Buffer {
  const rr = encodeRR(Buffer.from([0xc0, HEADER_SIZE]), TYPE.TXT, 60, txtRdata(text));
  const head = encodeHeader({ id: o.id ?? a.id, flags: FLAG.QR | FLAG.RD | (o.flags ?? 0), rcode: 0, qd: 1, an: 1, ns: 0, ar: 1 });
  return Buffer.concat([head, o.question ?? a.question, rr, encodeOpt(1232)]);
}

/** A UDP socket bound on `host` (port 0 or the one given) whose queries go to `onQuery`. */
async function udpServer(t: Test, host: string, onQuery: (a: Asked, sock: dgram.Socket) => void, port = 0): Promise<dgram.Socket> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (m, r) => onQuery(parseAsked(m, r), sock));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, host, () => resolve());
  });
  t.teardown(() => sock.close());
  return sock;
}

const send = (sock: dgram.Socket, msg: Buffer, to: dgram.RemoteInfo) => new Promise<void>((resolve) => sock.send(msg, to.port, to.address, () => resolve()));

t.test('a reply from another source address is ignored, even with the right ID, port and question', async (t) => {
  const attacker: { sock?: dgram.Socket } = {};
  const server = await udpServer(t, '127.0.0.1', (a, sock) => {
    void (async () => {
      // The spoofed answer goes out first, from 127.0.0.2 on the server's own port number…
      await send(attacker.sock!, reply(a, 'v=mm1; spoofed'), a.from);
      // …and the real one only after it has been sent.
      await send(sock, reply(a, 'v=mm1; genuine'), a.from);
    })();
  });
  const port = server.address().port;
  attacker.sock = await udpServer(t, '127.0.0.2', () => {}, port);
  const r = stubResolver([`127.0.0.1:${port}`], { timeoutMs: 3000 });
  for (let i = 0; i < 5; i++) {
    const [rr] = await lookupRecords(r, '_mailmesh.alpha.test', TYPE.TXT);
    t.equal(txtText(rr!.rdata), 'v=mm1; genuine', `round ${i}: the answer from the server's address wins`);
  }
});

t.test('replies for another question, or with the name in another case, are ignored', async (t) => {
  const flipCase = (name: Buffer) => Buffer.from([...name].map((c) => ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a ? c ^ 0x20 : c)));
  const asked: Asked[] = [];
  const server = await udpServer(t, '127.0.0.1', (a, sock) => {
    asked.push(a);
    const tail = a.question.subarray(a.name.length);
    const typeClass = (type: number, klass: number) => Buffer.from([type >> 8, type & 0xff, klass >> 8, klass & 0xff]);
    void (async () => {
      await send(sock, reply(a, 'v=mm1; other name', { question: Buffer.concat([Buffer.from('\x05other\x04test\x00', 'latin1'), tail]) }), a.from);
      await send(sock, reply(a, 'v=mm1; other type', { question: Buffer.concat([a.name, typeClass(TYPE.A, 1)]) }), a.from);
      await send(sock, reply(a, 'v=mm1; other class', { question: Buffer.concat([a.name, typeClass(TYPE.TXT, 3)]) }), a.from);
      await send(sock, reply(a, 'v=mm1; other case', { question: Buffer.concat([flipCase(a.name), tail]) }), a.from);
      await send(sock, reply(a, 'v=mm1; other id', { id: a.id ^ 1 }), a.from);
      await send(sock, reply(a, 'v=mm1; right'), a.from);
    })();
  });
  const r = stubResolver([`127.0.0.1:${server.address().port}`], { timeoutMs: 3000 });
  const [rr] = await lookupRecords(r, '_mailmesh.alpha.test', TYPE.TXT);
  t.equal(txtText(rr!.rdata), 'v=mm1; right', 'only the reply that echoes our question exactly is taken');

  // 0x20 (draft-vixie-dnsext-dns0x20): the name goes out in a random case each time, from a fresh port.
  for (let i = 0; i < 7; i++) await lookupRecords(r, '_mailmesh.alpha.test', TYPE.TXT);
  const spellings = new Set(asked.map((a) => a.name.toString('latin1')));
  t.ok(spellings.size > 1, `the query name's case varies (${spellings.size} spellings in ${asked.length} queries)`);
  t.ok(asked.every((a) => a.name.toString('latin1').toLowerCase() === '\t_mailmesh\x05alpha\x04test\x00'), 'and is the same name');
  t.ok(new Set(asked.map((a) => a.from.port)).size > 1, 'source ports differ between queries');
});

/** A TCP server on `port` of 127.0.0.1 with the given connection handler. */
async function tcpServer(t: Test, port: number, onConn: (s: net.Socket, query: Buffer) => void): Promise<void> {
  const srv = net.createServer((s) => {
    s.on('error', () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) onConn(s, buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve());
  });
  t.teardown(() => srv.close());
}

/** UDP and TCP on one port: UDP answers TC=1, TCP is handled by `onTcp`. */
async function truncatingServer(t: Test, onTcp: (s: net.Socket, a: Asked) => void): Promise<number> {
  for (;;) {
    const udp = await udpServer(t, '127.0.0.1', (a, sock) => {
      const head = encodeHeader({ id: a.id, flags: FLAG.QR | FLAG.TC, rcode: 0, qd: 1, an: 0, ns: 0, ar: 0 });
      void send(sock, Buffer.concat([head, a.question]), a.from);
    });
    const port = udp.address().port;
    try {
      await tcpServer(t, port, (s, q) => onTcp(s, parseAsked(q, { address: '', family: 'IPv4', port: 0, size: q.length })));
      return port;
    } catch {
      // the TCP port is taken: try another UDP port
    }
  }
}

const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

t.test('TC: the query goes again over TCP, where the question is checked too, within a deadline', async (t) => {
  const good = await truncatingServer(t, (s, a) => s.end(framed(reply(a, 'v=mm1; over tcp'))));
  const r = stubResolver([`127.0.0.1:${good}`], { timeoutMs: 3000 });
  t.equal(txtText((await lookupRecords(r, '_mailmesh.alpha.test', TYPE.TXT))[0]!.rdata), 'v=mm1; over tcp');

  const wrongCase = await truncatingServer(t, (s, a) => s.end(framed(reply(a, 'v=mm1; x', { question: Buffer.concat([Buffer.from(a.name.toString('latin1').toUpperCase(), 'latin1'), a.question.subarray(a.name.length)]) }))));
  await rejectsCode(t, stubResolver([`127.0.0.1:${wrongCase}`], { timeoutMs: 3000 }).query('_mailmesh.alpha.test', TYPE.TXT), 'LOOKUP_UNAVAILABLE', 'another question over TCP: no answer');

  // A server that trickles its answer, one octet at a time, never finishing within the timeout:
  // an idle timeout would never fire; the deadline does.
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => timers.forEach(clearInterval));
  const trickle = await truncatingServer(t, (s) => {
    s.write(Buffer.from([0x0f, 0xff]));
    let n = 0;
    const timer = setInterval(() => (s.destroyed || ++n > 2000 ? clearInterval(timer) : s.write(Buffer.from([0]))), 50);
    timers.push(timer);
  });
  await rejectsCode(t, stubResolver([`127.0.0.1:${trickle}`], { timeoutMs: 500 }).query('_mailmesh.alpha.test', TYPE.TXT), 'LOOKUP_UNAVAILABLE', 'a trickling TCP answer times out');
});

t.test('the AD bit counts only when configured, and only from a loopback resolver', async (t) => {
  const server = await udpServer(t, '127.0.0.1', (a, sock) => void send(sock, reply(a, 'v=mm1; ad', { flags: 0x0020 }), a.from));
  const target = [`127.0.0.1:${server.address().port}`];
  const off = await stubResolver(target, { timeoutMs: 2000 }).query('_mailmesh.alpha.test', TYPE.TXT);
  t.equal(off.authenticated, false, 'dnssec off (the default): AD is not trusted');
  const on = await stubResolver(target, { timeoutMs: 2000, dnssec: 'trust-ad-from-loopback' }).query('_mailmesh.alpha.test', TYPE.TXT);
  t.equal(on.authenticated, true, 'trust-ad-from-loopback: AD from 127.0.0.1 is trusted');

  const noAd = await udpServer(t, '127.0.0.1', (a, sock) => void send(sock, reply(a, 'v=mm1; no ad'), a.from));
  const plain = await stubResolver([`127.0.0.1:${noAd.address().port}`], { timeoutMs: 2000, dnssec: 'trust-ad-from-loopback' }).query('_mailmesh.alpha.test', TYPE.TXT);
  t.equal(plain.authenticated, false, 'no AD: not authenticated');

  for (const ip of ['127.0.0.1', '127.53.0.1', '::1', '::ffff:127.0.0.1']) t.ok(isLoopback(ip), `${ip} is loopback`);
  for (const ip of ['10.0.0.1', '192.168.1.1', '::2', '::ffff:10.0.0.1', '128.0.0.1', 'localhost', 'fe80::1']) t.notOk(isLoopback(ip), `${ip} is not`);
});

t.test('resolvers are IP addresses', async (t) => {
  for (const bad of ['localhost:53', 'dns.example:53', '[127.0.0.1]:53', '127.0.0.1:0', '127.0.0.1:99999']) t.throws(() => stubResolver([bad]), { code: 'CONFIG_INVALID' }, bad);
  t.doesNotThrow(() => stubResolver(['127.0.0.1', '[::1]:5353', '192.0.2.1:53']));
});

t.test('an IPv6 resolver: the reply is matched on its address too', async (t) => {
  const sock = dgram.createSocket('udp6');
  const bound = await new Promise<boolean>((resolve) => {
    sock.once('error', () => resolve(false));
    sock.bind(0, '::1', () => resolve(true));
  });
  if (!bound) return void t.plan(0, 'no ::1 on this host');
  t.teardown(() => sock.close());
  sock.on('message', (m, r) => void send(sock, reply(parseAsked(m, r), 'v=mm1; over ipv6'), r));
  const [rr] = await lookupRecords(stubResolver([`[::1]:${sock.address().port}`], { timeoutMs: 2000 }), '_mailmesh.alpha.test', TYPE.TXT);
  t.equal(txtText(rr!.rdata), 'v=mm1; over ipv6');
});
