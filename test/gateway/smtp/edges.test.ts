import t from 'tap';
import { Metrics } from '../../../directory/metrics.js';
import { floodNeverReading, rss, rssUnderFlood, settleRss, startFace } from '../../edges/helpers.js';
import { run } from '../../helpers.js';
import { OUR, Raw, startGateway, startSink } from './helpers.js';

/** swaks against the gateway: exit code 0 once a whole transaction went through. */
const swaks = (port: number) =>
  run('swaks', ['--server', '127.0.0.1', '--port', String(port), '--from', 'a@partner.test', '--to', `bob@${OUR}`, '--timeout', '10'], { allowFail: true });

t.test('SMTP: RFC 5321 §4.5.3.1.4 command lines longer than 512 octets get 500 5.5.2, not unbounded buffering', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink });
  const exact = await Raw.open(t, port);
  await exact.hello();
  t.same(await exact.send('NOOP ' + 'x'.repeat(512 - 7)), ['250 2.0.0 OK'], '512 octets with the CRLF: accepted');

  const long = await Raw.open(t, port);
  await long.hello();
  long.write(`MAIL FROM:<${'a'.repeat(600)}@partner.test>\r\n`);
  const [r] = await long.read(1);
  t.equal(`${r!.code} ${r!.lines[0]}`, '500 5.5.2 Line too long', '600 octets: 500 5.5.2');
  await long.closed;

  const endless = await Raw.open(t, port);
  await endless.hello();
  endless.write('NOOP ' + 'x'.repeat(1024 * 1024));
  const [e] = await endless.read(1);
  t.equal(e!.code, 500, 'a 1 MB line without CRLF: 500 once past the limit');
  await endless.closed;
  t.equal((await swaks(port)).code, 0, 'the gateway still relays');
});

t.test('SMTP: connections per client address are limited (421 4.7.0), slots come back', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink }, { edge: { maxConnectionsPerAddress: 2 } });
  const a = await Raw.open(t, port);
  const b = await Raw.open(t, port);
  await a.hello();
  await b.hello();
  const c = await Raw.open(t, port);
  const [r] = await c.read(1);
  t.match(`${r!.code} ${r!.lines[0]}`, /^421 4\.7\.0 .*Too many connections from your address/);
  await c.closed;
  a.socket.destroy();
  await a.closed;
  let ok = await swaks(port);
  for (let i = 0; i < 20 && ok.code !== 0; i++) ok = await swaks(port); // the server sees the close a moment after the client
  t.equal(ok.code, 0, `a freed slot takes a new client: ${ok.stderr}`);
});

t.test('SMTP: faults are counted per face; a listener error ends one connection only', async (t) => {
  const sink = await startSink(t);
  const metrics = new Metrics();
  const { gw, port } = await startGateway(t, { inbound: sink }, { metrics });
  const raw = await Raw.open(t, port);
  await raw.hello();
  gw.server.emit('error', new Error('a connection broke'));
  t.equal(metrics.counter('mailmesh_faults_total', '').get({ face: 'smtp' }), 1, 'mailmesh_faults_total{face="smtp"}');
  t.same(await raw.send('NOOP'), ['250 2.0.0 OK'], 'the other session goes on');
});

// The bound: smtp-server reads no further command while 16 KB of replies wait (its
// _whenWritable), so a pipelining flood costs one 64 KB read and the parser's buffers;
// 32 MB over the idle RSS leaves room for V8's heap growth.
const BOUND_MB = 32;

t.test('SMTP: a pipelining flood never reading replies: RSS stays bounded, the connection is closed after drainTimeoutMs', async (t) => {
  const { pid, port } = await startFace(t, 'smtp', { maxConnectionsPerAddress: 1, drainTimeoutMs: 8000 });
  await swaks(port); // warm up: the first session loads and compiles what every session uses
  const idle = rss(pid).now;
  // The warm-up connection may still count for a moment: flood once the server greets with 220.
  const EHLO = Buffer.from('EHLO flood.test\r\n');
  let flood = await floodNeverReading(port, EHLO, 3 * 1024 * 1024, '');
  for (let i = 0; i < 20 && !flood.answer.startsWith('220 '); i++) {
    flood.socket.destroy();
    flood = await floodNeverReading(port, EHLO, 3 * 1024 * 1024, '');
  }
  t.teardown(() => void flood.socket.destroy());
  // One connection per address: swaks gets in only once the server closed the flooding one.
  let ok = await swaks(port);
  t.match(ok.stdout.toString(), /421 4\.7\.0 .*Too many connections/, 'while the flooding client is connected, the address has no free slot');
  const during = await rssUnderFlood(pid, idle, BOUND_MB);
  t.ok(during.settled, `RSS settled ${during.grown.toFixed(0)} MB over idle ${idle.toFixed(0)} MB (bound ${BOUND_MB} MB)`);
  for (let i = 0; i < 100 && !/<- {2}220 /.test(ok.stdout.toString()); i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    ok = await swaks(port);
  }
  t.match(ok.stdout.toString(), /<- {2}220 /, `the stalled connection was closed: a new one is greeted`);
  flood.socket.destroy();
  const after = await settleRss(pid, idle, 24);
  t.ok(after - idle < 24, `RSS back near idle after close: ${after.toFixed(0)} MB`);
});
