import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { addressRdata } from '../../directory/dnswire.js';
import { CATALOGUE } from '../../directory/errors.js';
import { stubResolver } from '../../federation/dns.js';
import { JoinService } from '../../federation/join.js';
import { isSpecialAddress } from '../../federation/outbound.js';
import { baseFor } from '../../federation/web.js';
import { startHttp } from '../directory/http/helpers.js';
import { run, tempDir } from '../helpers.js';
import { memoryDirectory, startZone, type TestZone } from './helpers.js';

// Join is asked by anyone for a domain of their choice: its proof fetch must not reach internal
// services, and its answer must not tell what the lookups found. Everything here is on loopback:
// the member's DNS (a test zone), a "internal service" that counts connections, the directory.

const zone = await startZone(t);
const setAddress = (z: TestZone, name: string, ip: string) => {
  const { type, rdata } = addressRdata(ip);
  z.set(name, type, [rdata]);
};

/** An internal TLS service on loopback: counts connections and the TLS server names asked for. */
const dir = tempDir(t);
await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2', '-subj', '/CN=internal'], { cwd: dir });
const seen = { connections: 0, servernames: [] as string[] };
const context = tls.createSecureContext({ key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) });
const internal = tls.createServer({ SNICallback: (name, cb) => (seen.servernames.push(name), cb(null, context)) }, (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}'));
internal.on('connection', () => seen.connections++);
internal.on('tlsClientError', () => undefined);
await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
t.teardown(() => internal.close());
const port = (internal.address() as net.AddressInfo).port;

const warnings: Record<string, unknown>[] = [];
const logger = { info: () => undefined, warn: (o: Record<string, unknown>) => void warnings.push(o) };

async function directoryWith(o: { wellKnownBase: string; allowPrivateAddresses?: boolean; resolvers?: string[] }) {
  const d = await memoryDirectory();
  const sources = { resolver: stubResolver(o.resolvers ?? [`127.0.0.1:${zone.port}`], { timeoutMs: 500 }), wellKnownBase: baseFor(o.wellKnownBase), clock: () => new Date(), timeoutMs: 2000 };
  const joins = new JoinService({ directory: d, sources, logger, allowPrivateAddresses: o.allowPrivateAddresses });
  const { base } = await startHttp(t, d, undefined, { federation: joins });
  return { d, joins, base };
}

/** Posts a member's signed record as its join and returns the HTTP answer. */
async function postJoinRaw(base: string, domain: string): Promise<{ status: number; code: string; message: string; text: string }> {
  const member = await (await memoryDirectory()).addDomain(domain);
  const res = await fetch(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(member.signed) });
  const text = await res.text();
  const { error } = JSON.parse(text) as { error: { code: string; message: string } };
  return { status: res.status, code: error.code, message: error.message, text };
}

t.test('special-purpose addresses are recognised, public ones are not', async (t) => {
  for (const a of ['0.1.2.3', '10.1.2.3', '100.64.0.1', '127.0.0.1', '169.254.169.254', '172.16.5.4', '192.168.1.1', '198.18.0.1', '224.0.0.1', '255.255.255.255',
    '::', '::1', 'fe80::1', 'fc00::1', 'fd12:3456::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b:1::a00:1', '::7f00:1', '::10.0.0.1', '2001:db8::1', 'ff02::1', 'not-an-ip']) {
    t.ok(isSpecialAddress(a), `${a} is refused`);
  }
  for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '2a00:1450::1', '::ffff:8.8.8.8', '64:ff9b::808:808']) t.notOk(isSpecialAddress(a), `${a} is public`);
});

t.test('a join whose domain resolves to loopback is refused without contacting it, with a code and no detail', async (t) => {
  setAddress(zone, 'victim.test', '127.0.0.1');
  setAddress(zone, 'victim6.test', '::1');
  setAddress(zone, 'mapped.test', '::ffff:127.0.0.1');
  const byName = await directoryWith({ wellKnownBase: `https://{domain}:${port}` });
  const byAddress = await directoryWith({ wellKnownBase: `https://127.0.0.1:${port}/{domain}` });
  const cases: [string, string][] = [[byName.base, 'victim.test'], [byName.base, 'victim6.test'], [byName.base, 'mapped.test'], [byAddress.base, 'victim.test']];
  for (const [base, domain] of cases) {
    const before = seen.connections;
    const a = await postJoinRaw(base, domain);
    t.equal(a.code, 'ADDRESS_FORBIDDEN', `${domain} via ${base === byName.base ? 'its name' : 'an address in the base'}: a stable code`);
    t.equal(a.status, 403);
    t.equal(a.message, CATALOGUE.ADDRESS_FORBIDDEN.message, 'the catalogue text, nothing more');
    t.notMatch(a.text, /127\.0\.0\.1|::1|::ffff|victim|mapped/, 'no address, no host in the answer');
    t.equal(seen.connections, before, 'the internal service saw no connection');
  }
  t.ok(warnings.some((w) => w.code === 'ADDRESS_FORBIDDEN' && String(w.detail).includes('127.0.0.1')), 'the detail is in the log');
  t.equal(await byName.d.store.getRecord('victim.test' as never), undefined, 'nothing joined');
});

t.test('fetch and DNS failures are logged, never answered', async (t) => {
  // Allowed to reach loopback, but nothing there serves a proof; the resolver is down.
  const { base } = await directoryWith({ wellKnownBase: `https://127.0.0.1:${port}/{domain}`, allowPrivateAddresses: true, resolvers: ['127.0.0.1:1'] });
  warnings.length = 0;
  const a = await postJoinRaw(base, 'probe.test');
  t.equal(a.code, 'LOOKUP_UNAVAILABLE');
  t.equal(a.status, 503);
  t.equal(a.message, CATALOGUE.LOOKUP_UNAVAILABLE.message, 'generic text');
  t.notMatch(a.text, /127\.0\.0\.1|certificate|ECONNREFUSED|did not answer|probe/);
  t.match(String(warnings.find((w) => w.code === 'LOOKUP_UNAVAILABLE')?.detail), /127\.0\.0\.1/, 'the log has what happened');
});

t.test('allowed, the fetch goes to the address it checked, with the name for TLS', async (t) => {
  setAddress(zone, 'private.test', '127.0.0.1');
  const { base } = await directoryWith({ wellKnownBase: `https://{domain}:${port}`, allowPrivateAddresses: true, resolvers: [`127.0.0.1:${zone.port}`] });
  const before = seen.connections;
  const a = await postJoinRaw(base, 'private.test');
  t.equal(seen.connections, before + 1, 'resolved through the federation resolvers and connected once');
  t.ok(seen.servernames.includes('private.test'), 'TLS server name is the host name, not the address');
  t.equal(a.code, 'PROOF_MISSING', 'the internal certificate is not trusted: no proof');
});

t.test('a redirect is not followed', async (t) => {
  const redirector = http.createServer((_req, res) => res.writeHead(302, { location: `https://127.0.0.1:${port}/.well-known/mailmesh/record` }).end());
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  t.teardown(() => redirector.close());
  const { base } = await directoryWith({ wellKnownBase: `http://127.0.0.1:${(redirector.address() as net.AddressInfo).port}/{domain}`, allowPrivateAddresses: true });
  const before = seen.connections;
  const a = await postJoinRaw(base, 'redirect.test');
  t.equal(a.code, 'PROOF_MISSING', 'a redirect is no proof');
  t.equal(seen.connections, before, 'the redirect target saw no connection');
});
