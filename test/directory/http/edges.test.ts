import net from 'node:net';
import t from 'tap';
import { JoinService } from '../../../federation/join.js';
import { stubResolver } from '../../../federation/dns.js';
import { Metrics } from '../../../directory/metrics.js';
import { jsonDepth } from '../../../directory/http/body.js';
import { run } from '../../helpers.js';
import { get, memoryDirectory, startHttp } from './helpers.js';

const directory = await memoryDirectory();
await directory.addDomain('example.org');
const errorCode = (r: { json(): unknown }) => (r.json() as { error?: { code?: string } }).error?.code;

t.test('jsonDepth: one pass, strings do not count, stops past the maximum', async (t) => {
  t.equal(jsonDepth('{"a":[1,{"b":[]}]}'), 4);
  t.equal(jsonDepth('["[[[[", "\\"[[[["]'), 1, 'brackets in strings, escaped quotes');
  t.equal(jsonDepth('1'), 0);
  t.equal(jsonDepth('['.repeat(1_000_000), 64), 65, 'stops once past the maximum');
});

t.test('HTTP: every malformed body gets a 4xx with a stable code, never a 500', async (t) => {
  // The real join service: a body that reached it would be canonicalised (RFC 8785) and checked.
  const sources = { resolver: stubResolver(['127.0.0.1:1']), wellKnownBase: (d: string) => `http://127.0.0.1:1/${d}`, clock: () => new Date(), timeoutMs: 200 };
  const joins = new JoinService({ directory, sources });
  const metrics = new Metrics();
  const { base } = await startHttp(t, directory, undefined, { federation: { join: (b) => joins.join(b), leave: (d, b) => joins.leave(d, b) }, metrics });
  const json = 'application/json';
  const cases: [string, string | undefined, string | Buffer, number, string][] = [
    ['10,000-deep array', json, '['.repeat(10_000) + ']'.repeat(10_000), 400, 'BODY_TOO_DEEP'],
    ['10,000-deep object', json, '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000), 400, 'BODY_TOO_DEEP'],
    ['deep and unbalanced', json, '['.repeat(100_000), 400, 'BODY_TOO_DEEP'],
    ['10,000-deep inside a record', json, `{"payload":${'['.repeat(10_000)}${']'.repeat(10_000)},"signature":"x"}`, 400, 'BODY_TOO_DEEP'],
    ['10,000-deep payload object', json, `{"payload":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)},"signature":"x"}`, 400, 'BODY_TOO_DEEP'],
    ['too large', json, JSON.stringify({ x: 'y'.repeat(300 * 1024) }), 413, 'BODY_TOO_LARGE'],
    ['XML', 'application/xml', '<a/>', 415, 'MEDIA_TYPE_UNSUPPORTED'],
    ['text/plain', 'text/plain', '{"domain":"x.example"}', 415, 'MEDIA_TYPE_UNSUPPORTED'],
    ['form', 'application/x-www-form-urlencoded', 'a=b', 415, 'MEDIA_TYPE_UNSUPPORTED'],
    ['no content type', undefined, '{"a":1}', 415, 'MEDIA_TYPE_UNSUPPORTED'],
    ['invalid UTF-8', json, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 400, 'BODY_ENCODING'],
    ['overlong UTF-8 (0xC0 0xAF)', json, Buffer.from([0x22, 0xc0, 0xaf, 0x22]), 400, 'BODY_ENCODING'],
    ['Latin-1 charset', `${json}; charset=iso-8859-1`, '{"a":"\xe9"}', 415, 'MEDIA_TYPE_UNSUPPORTED'],
    ['UTF-16', `${json}; charset=utf-16`, Buffer.from('{"a":1}', 'utf16le'), 415, 'MEDIA_TYPE_UNSUPPORTED'],
    ['UTF-16 without a charset', json, Buffer.from('{"a":1}', 'utf16le'), 400, 'BAD_REQUEST'],
    ['empty', json, '', 400, 'BAD_REQUEST'],
    ['broken', json, '{"broken', 400, 'BAD_REQUEST'],
    ['__proto__', json, '{"__proto__":{"x":1}}', 400, 'BAD_REQUEST'],
    ['not a record', json, '[1,2,3]', 400, 'SIGNED_RECORD_MALFORMED'],
  ];
  for (const [what, type, body, status, code] of cases) {
    const r = await get(`${base}/v1/domains`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body });
    t.equal(r.status, status, `${what}: ${r.status}`);
    t.equal(errorCode(r), code, `${what}: ${r.text.slice(0, 120)}`);
  }
  t.equal(metrics.counter('mailmesh_faults_total', '').get({ face: 'http' }), 0, 'no fault: every case was bad input');
  t.equal((await get(`${base}/healthz`)).status, 200, 'still serving');
});

t.test('HTTP: a handler that walks the body recursively never sees a deep one (it was a 500)', async (t) => {
  const walk = async (b: unknown) => ({ size: JSON.stringify(b).length }) as never;
  const metrics = new Metrics();
  const { base } = await startHttp(t, directory, undefined, { federation: { join: walk, leave: walk }, metrics });
  const r = await get(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '['.repeat(10_000) + ']'.repeat(10_000) });
  t.equal(r.status, 400);
  t.equal(errorCode(r), 'BODY_TOO_DEEP');
  t.equal(metrics.counter('mailmesh_faults_total', '').get({ face: 'http' }), 0);
  const bad = await startHttp(t, directory, undefined, { federation: { join: async () => { throw new TypeError('a bug'); }, leave: walk }, metrics });
  const f = await get(`${bad.base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(f.status, 500, 'a bug in a handler: 500 for that request');
  t.equal(errorCode(f), 'INTERNAL');
  t.equal(metrics.counter('mailmesh_faults_total', '').get({ face: 'http' }), 1, 'counted as mailmesh_faults_total{face="http"}');
  t.equal((await get(`${bad.base}/healthz`)).status, 200, 'and the face goes on');
});

t.test('HTTP: what the HTTP parser refuses gets a JSON error with a stable code', async (t) => {
  const { port } = await startHttp(t, directory);
  const answer = (bytes: string) => new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('close', () => resolve(text));
    s.on('error', () => {});
  });
  t.match(await answer('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'), /^HTTP\/1\.1 400 [^]*"code":"BAD_REQUEST"/);
  t.match(await answer(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 [^]*"code":"BAD_REQUEST"/);
});

t.test('HTTP: a slowloris client (headers a byte at a time) gets 408 after http.headersTimeoutSec and is closed', async (t) => {
  const { port } = await startHttp(t, directory, { timeouts: { headersMs: 1000 } });
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  let text = '';
  s.on('data', (d: Buffer) => (text += d.toString()));
  const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
  s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => s.writable && s.write('X'), 100);
  await closed;
  clearInterval(drip);
  t.match(text, /^HTTP\/1\.1 408 [^]*"code":"BAD_REQUEST"/, '408 with a JSON error, then the connection closes');
});

t.test('http.trustProxy: clients behind a trusted proxy get their own rate-limit buckets', async (t) => {
  const { base } = await startHttp(t, directory, { rateLimit: { max: 2, windowSec: 60 }, trustProxy: ['127.0.0.1'] });
  const as = (client: string) => run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `X-Forwarded-For: ${client}`, `${base}/v1/domains/example.org`]).then((r) => r.stdout.toString());
  t.same([await as('198.51.100.1'), await as('198.51.100.1'), await as('198.51.100.1')], ['200', '200', '429'], 'client 1: its own limit');
  t.same([await as('198.51.100.2'), await as('198.51.100.2')], ['200', '200'], 'client 2 behind the same proxy: a bucket of its own');
});

t.test('http.trustProxy: an untrusted sender\'s X-Forwarded-For is ignored', async (t) => {
  const { base } = await startHttp(t, directory, { rateLimit: { max: 2, windowSec: 60 }, trustProxy: ['192.0.2.1'] });
  const as = (client: string) => run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `X-Forwarded-For: ${client}`, `${base}/v1/domains/example.org`]).then((r) => r.stdout.toString());
  t.same([await as('198.51.100.1'), await as('198.51.100.2'), await as('198.51.100.3')], ['200', '200', '429'], 'one bucket: the sender\'s own address');
});

t.test('HTTP: connections per client address are limited (503 TOO_MANY_CONNECTIONS); a trusted proxy is exempt', async (t) => {
  const { port } = await startHttp(t, directory, { limits: { maxConnectionsPerAddress: 2 } });
  const open = async () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    return s;
  };
  const held = [await open(), await open()];
  const third = await open();
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    third.on('data', (d: Buffer) => (text += d.toString()));
    third.on('close', () => resolve(text));
  });
  t.match(answer, /^HTTP\/1\.1 503 /, '503 to the connection over the limit');
  t.match(answer, /"code":"TOO_MANY_CONNECTIONS"/);
  for (const s of held) s.destroy();

  const proxied = await startHttp(t, directory, { limits: { maxConnectionsPerAddress: 1 }, trustProxy: ['127.0.0.1'] });
  const p1 = net.connect(proxied.port, '127.0.0.1');
  p1.on('error', () => {});
  await new Promise((r) => p1.once('connect', r));
  t.equal((await get(`http://127.0.0.1:${proxied.port}/healthz`)).status, 200, 'a trusted proxy may open more connections');
  p1.destroy();
});
