// Capabilities in the signed domain record (directory/record.ts SMIME_AEAD): our records announce
// AuthEnvelopedData with AES-256-GCM, records signed before that still verify and mean CBC only,
// and discovery hands the announcement to the tunnel, which picks the cipher by it.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { SMIME_AEAD, type DomainRecord } from '../../directory/record.js';
import { signPayload, verifySigned } from '../../directory/signed.js';
import { stubResolver } from '../../federation/dns.js';
import { Discovery } from '../../federation/discovery.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { WELL_KNOWN_RECORD } from '../../federation/proof.js';
import { decryptTunnel, encryptTunnel, readTunnel } from '../../gateway/tunnel/tunnel.js';
import { fieldValue, parseEntity } from '../../gateway/tunnel/mime.js';
import { rejectsCode } from '../helpers.js';
import { memoryDirectory, startZone } from './helpers.js';

const dir = await memoryDirectory();
const [alpha, beta, gamma] = [await dir.addDomain('alpha.test'), await dir.addDomain('beta.test'), await dir.addDomain('gamma.test')];
const secrets = async (r: DomainRecord) => dir.getSecrets(r.domain);

/** gamma's record as a directory of an older version signed it: no capabilities. */
async function withoutCapabilities(r: DomainRecord): Promise<DomainRecord['signed']> {
  const p = JSON.parse(r.signed!.payload) as Record<string, unknown>;
  delete p.capabilities;
  return signPayload(p as never, [(await secrets(r)).openpgp!.armored], new Date());
}

t.test('our records announce smime-aes-256-gcm in the signed payload; older records verify without it', async (t) => {
  t.same(beta.capabilities, [SMIME_AEAD], 'a new domain announces it');
  t.same((await verifySigned(beta.signed, new Date())).payload.capabilities, [SMIME_AEAD], 'under the domain signature');
  const old = await withoutCapabilities(gamma);
  t.notMatch(old!.payload, 'capabilities');
  t.equal((await verifySigned(old, new Date())).payload.capabilities, undefined, 'an older record still verifies: CBC only');

  const priv = (await secrets(beta)).openpgp!.armored;
  for (const bad of ['smime-aes-256-gcm', [1], Array.from({ length: 33 }, (_, i) => `c${i}`), ['x'.repeat(65)]]) {
    const p = { ...(JSON.parse(beta.signed!.payload) as object), capabilities: bad };
    await rejectsCode(t, verifySigned(await signPayload(p as never, [priv], new Date()), new Date()), 'SIGNED_RECORD_MALFORMED', `capabilities ${JSON.stringify(bad).slice(0, 40)}`);
  }
  const unknown = { ...(JSON.parse(beta.signed!.payload) as object), capabilities: ['smime-future-aead', SMIME_AEAD] };
  t.same((await verifySigned(await signPayload(unknown as never, [priv], new Date()), new Date())).payload.capabilities, ['smime-future-aead', SMIME_AEAD], 'unknown names are kept (and ignored by the tunnel)');
});

t.test('resign gives an older local record the capabilities of this version', async (t) => {
  const d = await memoryDirectory();
  const r = await d.addDomain('delta.test');
  const { capabilities: _, ...older } = r;
  await d.putRecord({ ...older, signed: await signPayload({ ...(JSON.parse(r.signed!.payload) as object), capabilities: undefined } as never, [(await d.getSecrets('delta.test')).openpgp!.armored], new Date()) }, r.serial);
  t.equal((await d.getRecord('delta.test')).capabilities, undefined, 'stored without');
  const again = await d.resign('delta.test');
  t.same(again.capabilities, [SMIME_AEAD]);
  t.same((await verifySigned(again.signed, new Date())).payload.capabilities, [SMIME_AEAD]);
});

t.test('discovery passes the announcement on: GCM to beta (new record), CBC to gamma (older record)', async (t) => {
  const zone = await startZone(t);
  // Each domain's `_mailmesh` TXT pins its OpenPGP key; its DNS publishes no key, its well-known record does.
  for (const r of [beta, gamma]) zone.pin({ ...r, keys: { openpgp: r.keys.openpgp }, capabilities: undefined });
  const served: Record<string, unknown> = { 'beta.test': beta.signed, 'gamma.test': await withoutCapabilities(gamma) };
  const server = createServer((req, res) => {
    const [, domain, ...rest] = (req.url ?? '').split('/');
    const body = `/${rest.join('/')}` === WELL_KNOWN_RECORD ? served[domain!] : undefined;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(body ? JSON.stringify(body) : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const discovery = new Discovery({
    sources: { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }), wellKnownBase: (d) => `${base}/${d}`, clock: () => new Date(), timeoutMs: 2000 },
    directories: [],
    pins: new MemoryPinStore(),
  });
  const own = { domain: alpha.domain, keys: alpha.keys, secrets: await secrets(alpha) };
  const message = Buffer.from('From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: hi\r\n\r\nhello\r\n');
  for (const [rec, type, cipher] of [[beta, 'authEnveloped-data', 'aes-256-gcm'], [gamma, 'enveloped-data', 'aes-256-cbc']] as const) {
    const found = await discovery.discover(rec.domain);
    t.equal(found.provenance.source, 'domain-https', `${rec.domain}: from its signed well-known record`);
    t.same(found.capabilities, rec === beta ? [SMIME_AEAD] : undefined, `${rec.domain}: capabilities as signed`);
    const sealed = await encryptTunnel('smime', readTunnel(message), own, { domain: found.domain, keys: found.keys, capabilities: found.capabilities });
    t.match(fieldValue(parseEntity(sealed).fields, 'content-type'), `smime-type=${type};`, `${rec.domain}: ${type}`);
    const opened = await decryptTunnel(readTunnel(sealed), { domain: rec.domain, keys: rec.keys, secrets: await secrets(rec) }, { domain: alpha.domain, keys: alpha.keys });
    t.same({ cipher: opened.cipher, signature: opened.signature }, { cipher, signature: 'valid' });
  }
});
