import * as openpgp from 'openpgp';
import t from 'tap';
import { pino } from 'pino';
import { createHttpServer } from '../../directory/http/http.js';
import { canonicalize } from '../../directory/jcs.js';
import { generateOpenPgpKey, openPgpKeyInfo } from '../../directory/openpgp.js';
import type { DomainRecord } from '../../directory/record.js';
import { payloadKeys, recordPayload, signPayload } from '../../directory/signed.js';
import { stubResolver } from '../../federation/dns.js';
import { Discovery } from '../../federation/discovery.js';
import { JoinService, postJoin, postLeave } from '../../federation/join.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { WELL_KNOWN_RECORD } from '../../federation/proof.js';
import { postVeto } from '../../federation/recovery.js';
import { baseFor } from '../../federation/web.js';
import { startDns, ZONE } from '../directory/dns/helpers.js';
import { startHttp } from '../directory/http/helpers.js';
import { rejectsCode } from '../helpers.js';
import { memoryDirectory, startWellKnown, startZone, testClock } from './helpers.js';

// Loopback federation: one directory (HTTP + DNS faces on port 0), the members' own DNS (a test
// zone holding their _mailmesh pins), a web server for well-known records, and two gateways.
const clock = testClock();
const zone = await startZone(t);
const resolvers = [`127.0.0.1:${zone.port}`];

const { records: wellKnown, base: webBase } = await startWellKnown(t);
const wellKnownBase = baseFor(webBase);
const sources = { resolver: stubResolver(resolvers, { timeoutMs: 2000 }), wellKnownBase, clock: clock.now, timeoutMs: 2000 };

const dir = await memoryDirectory(clock.now);
const joins = new JoinService({ directory: dir, sources, allowPrivateAddresses: true });
const { base: dirUrl } = await startHttp(t, dir, undefined, { federation: joins });
const { server: dns, port: dnsPort } = await startDns(t, dir, { ttl: 60, directoryUrl: dirUrl });

/** A gateway: its own store with its domain (signed record), and a discovery resolver. */
async function gateway(domain: string) {
  const local = await memoryDirectory(clock.now);
  const record = await local.addDomain(domain, { gateways: { smtp: [`mx.${domain}:25`] } });
  const pins = new MemoryPinStore();
  const discovery = new Discovery({
    sources,
    directories: [{ url: dirUrl, zone: ZONE, nameservers: [`127.0.0.1:${dnsPort}`] }],
    pins,
    local: (d) => local.findRecord(d, { unpublished: true }),
    cacheTtlMs: 60_000,
  });
  return { local, record, pins, discovery };
}

const alpha = await gateway('alpha.test');
const beta = await gateway('beta.test');

t.test('both gateways join with their TXT pins and find each other with provenance', async (t) => {
  t.ok(alpha.record.signed, 'a generated domain has a signed record');
  zone.pin(alpha.record, dirUrl);
  zone.pin(beta.record, dirUrl);
  const ja = await postJoin(dirUrl, alpha.record.signed!);
  t.equal(ja.provenance.source, 'joined');
  t.match(ja.provenance.verified, /_mailmesh TXT pins pgp=/);
  await postJoin(dirUrl, beta.record.signed!);
  await dns.settled();

  const b = await alpha.discovery.discover('someone@beta.test');
  t.equal(b.keys.openpgp?.fingerprint, beta.record.keys.openpgp!.fingerprint, 'alpha gets beta\'s key');
  t.equal(b.keys.smime?.fingerprint, beta.record.keys.smime!.fingerprint);
  // The directory's DNS answers first, over plain DNS (unauthenticated); its signed record
  // (HTTPS) carries the same keys, so that is the answer: authenticated.
  t.equal(b.provenance.source, 'directory-https', 'the same keys, signed, from the directory');
  t.equal(b.provenance.trust, 'signed-record');
  t.match(b.provenance.verified, /signature by [0-9A-F]{40}, matches the domain's _mailmesh pin/);
  t.equal(b.cache, 'miss');
  t.equal((await alpha.discovery.discover('beta.test')).cache, 'hit');

  const a = await beta.discovery.discover('alpha.test');
  t.equal(a.keys.openpgp?.fingerprint, alpha.record.keys.openpgp!.fingerprint, 'beta gets alpha\'s key');
  t.equal((await alpha.discovery.discover('alpha.test')).provenance.source, 'local', 'own domain is local');
  t.equal((await alpha.discovery.discover('alpha.test')).provenance.trust, 'local');
  t.equal((await alpha.pins.get('beta.test'))?.keys.openpgp?.fingerprint, beta.record.keys.openpgp!.fingerprint, 'pinned on first use');

  // Without DNS for the directory, the signed record over HTTPS is the source, and it is verified.
  const httpsOnly = new Discovery({ sources, directories: [{ url: dirUrl }], pins: new MemoryPinStore() });
  const viaHttps = await httpsOnly.discover('beta.test');
  t.equal(viaHttps.provenance.source, 'directory-https');
  t.equal(viaHttps.provenance.trust, 'signed-record', 'a signed record from a configured directory');
  t.match(viaHttps.provenance.verified, `signature by ${beta.record.keys.openpgp!.fingerprint}`);
  t.same(viaHttps.gateways, { smtp: ['mx.beta.test:25'] });

  const none = await httpsOnly.discover('nowhere.test');
  t.equal(none.provenance.source, 'none');
  t.equal(none.provenance.trust, 'unauthenticated');
  t.same(none.keys, {});
});

t.test('key trust: a pin keeps the trust of the answer it was taken from', async (t) => {
  // The directory's DNS only (its HTTPS face unreachable): plain DNS.
  const dnsOnly = { url: 'http://127.0.0.1:1', zone: ZONE, nameservers: [`127.0.0.1:${dnsPort}`] };
  const fromDns = new MemoryPinStore();
  const plain = await new Discovery({ sources, directories: [dnsOnly], pins: fromDns }).discover('beta.test');
  t.equal(plain.provenance.source, 'directory-dns', 'the directory\'s DNS');
  t.match(plain.provenance.verified, /match its TXT pin, matches the domain's _mailmesh pin/);
  t.equal(plain.provenance.trust, 'unauthenticated', 'plain DNS: the keys are not authenticated');
  t.equal(plain.provenance.trustPending, true, 'and the directory\'s signed record could not be asked: pending');
  const fromRecord = new MemoryPinStore();
  t.equal((await new Discovery({ sources, directories: [{ url: dirUrl }], pins: fromRecord }).discover('beta.test')).provenance.trust, 'signed-record', 'pinned from a signed record');
  const again = await new Discovery({ sources, directories: [dnsOnly], pins: fromRecord }).discover('beta.test');
  t.equal(again.provenance.source, 'directory-dns');
  t.equal(again.provenance.trust, 'pinned', 'the same keys later over plain DNS: a pin of a signed record');
  t.notOk(again.provenance.trustPending);

  // Every source down: the pin stands in, with the trust it was taken with.
  const down = (pins: MemoryPinStore) => new Discovery({ sources: { ...sources, resolver: stubResolver(['127.0.0.1:1'], { timeoutMs: 300 }) }, directories: [{ url: 'http://127.0.0.1:1' }], pins });
  const pinnedSigned = await down(fromRecord).discover('beta.test');
  t.same([pinnedSigned.provenance.source, pinnedSigned.provenance.trust], ['pinned', 'pinned'], 'a pin of a signed record');
  const pinnedDns = await down(fromDns).discover('beta.test');
  t.same([pinnedDns.provenance.source, pinnedDns.provenance.trust, pinnedDns.provenance.trustPending], ['pinned', 'unauthenticated', true], 'a pin of a plain DNS answer is no better than it (pending: every source failed)');
  const old = new MemoryPinStore();
  const { trust: _, ...legacy } = (await fromRecord.get('beta.test')) as Awaited<ReturnType<MemoryPinStore['get']>> & { trust?: string };
  await old.put('beta.test', legacy);
  t.equal((await down(old).discover('beta.test')).provenance.trust, 'unauthenticated', 'a pin written before key trust existed: unauthenticated');
});

t.test('refused joins say why with a stable code', async (t) => {
  // Wrong pin: the TXT names another key.
  const gamma = await memoryDirectory(clock.now);
  const g = await gamma.addDomain('gamma.test');
  zone.pin({ ...g, keys: { openpgp: alpha.record.keys.openpgp } }, dirUrl);
  await rejectsCode(t, postJoin(dirUrl, g.signed!), 'PIN_MISMATCH');
  // No proof at all.
  const delta = await (await memoryDirectory(clock.now)).addDomain('delta.test');
  await rejectsCode(t, postJoin(dirUrl, delta.signed!), 'PROOF_MISSING');
  // Bad signature: signed by another key than the record's.
  const other = await generateOpenPgpKey('delta.test' as never, { algorithm: 'curve25519', now: clock.now(), validDays: 30 });
  const forged = await signPayload(JSON.parse(delta.signed!.payload), [other.privateArmored], clock.now());
  zone.pin(delta, dirUrl);
  await rejectsCode(t, postJoin(dirUrl, forged), 'SIGNATURE_INVALID');
  // A payload that is not canonical JSON.
  await rejectsCode(t, postJoin(dirUrl, { payload: ' ' + delta.signed!.payload, signature: delta.signed!.signature }), 'SIGNED_RECORD_MALFORMED');
  await rejectsCode(t, postJoin(dirUrl, { nonsense: true } as never), 'SIGNED_RECORD_MALFORMED');
  // Someone else's domain: a new key for beta.test. Without the TXT naming it: refused.
  const mallory = await (await memoryDirectory(clock.now)).addDomain('beta.test');
  await rejectsCode(t, postJoin(dirUrl, mallory.signed!), 'DOMAIN_HELD');
  // With the TXT changed to it (control of the domain's DNS): only a recovery, held down, that beta vetoes.
  zone.pin(mallory, dirUrl);
  t.equal((await postJoin(dirUrl, mallory.signed!)).pendingRecovery?.openpgp, mallory.keys.openpgp!.fingerprint, 'a recovery is pending');
  await postVeto(dirUrl, 'beta.test', mallory.keys.openpgp!.fingerprint, await betaPriv(), clock.now());
  zone.pin(beta.record, dirUrl);
  t.equal((await dir.getRecord('beta.test')).keys.openpgp?.fingerprint, beta.record.keys.openpgp!.fingerprint, 'beta still holds its domain');
  t.notOk((await dir.getRecord('beta.test')).pendingRecovery, 'vetoed');
  // Proof through the well-known record instead of DNS.
  const eps = await (await memoryDirectory(clock.now)).addDomain('epsilon.test');
  wellKnown.set('epsilon.test', eps.signed!);
  const je = await postJoin(dirUrl, eps.signed!);
  t.match(je.provenance.verified, WELL_KNOWN_RECORD);
});

t.test('re-verification marks a record stale when its proof disappears, and active when it is back', async (t) => {
  zone.delete('_mailmesh.alpha.test');
  const out = await joins.reverify();
  t.same(out.find((o) => o.domain === 'alpha.test')?.status, 'stale');
  t.equal((await dir.getRecord('alpha.test')).status, 'stale', 'kept, marked stale');
  zone.pin(alpha.record, dirUrl);
  t.same((await joins.reverify()).find((o) => o.domain === 'alpha.test')?.status, 'active');
});

/** A new OpenPGP key for a domain, as a gateway would generate it for a rollover. */
async function newKey(domain: string) {
  const k = await generateOpenPgpKey(domain as never, { algorithm: 'curve25519', now: clock.now(), validDays: 365 });
  return { priv: k.privateArmored, info: await openPgpKeyInfo(k.publicKey) };
}
async function betaPriv(): Promise<string> {
  return (await beta.local.getSecrets('beta.test')).openpgp!.armored;
}
function signedRecord(base: DomainRecord, keys: DomainRecord['keys'], signers: string[], extra: Parameters<typeof recordPayload>[2] = {}) {
  return signPayload(recordPayload({ ...base, keys }, clock.now(), extra), signers, clock.now());
}

t.test('rollover: beta announces a next key, then switches; alpha follows without an alarm', async (t) => {
  const k2 = await newKey('beta.test');
  clock.advance(1000);
  // Phase 1: the current key announces the next one.
  const phase1 = await signedRecord(beta.record, beta.record.keys, [await betaPriv()], { next: payloadKeys({ openpgp: k2.info }) });
  await postJoin(dirUrl, phase1);
  clock.advance(61_000);
  t.equal((await alpha.discovery.discover('beta.test')).keys.openpgp?.fingerprint, beta.record.keys.openpgp!.fingerprint, 'the current key during the overlap');
  // Phase 2: the next key takes over; the record is signed by both.
  clock.advance(1000);
  const phase2 = await signedRecord(beta.record, { openpgp: k2.info, smime: beta.record.keys.smime }, [k2.priv, await betaPriv()]);
  zone.pin({ ...beta.record, keys: { openpgp: k2.info, smime: beta.record.keys.smime } }, dirUrl);
  const joined = await postJoin(dirUrl, phase2);
  t.match(joined.provenance.verified, /announced as next/);
  await dns.settled();
  clock.advance(61_000);
  const after = await alpha.discovery.discover('beta.test');
  t.equal(after.keys.openpgp?.fingerprint, k2.info.fingerprint, 'alpha uses the new key');
  t.notOk(after.violation, 'no pin alarm');
  t.equal((await alpha.pins.get('beta.test'))?.keys.openpgp?.fingerprint, k2.info.fingerprint, 'the pin moved');

  // An unannounced swap inside the directory (DNS pin changed too): caught, the old key stays.
  const k3 = await newKey('beta.test');
  const swapped = await signedRecord(beta.record, { openpgp: k3.info }, [k3.priv]);
  const held = await dir.getRecord('beta.test');
  await dir.putRecord({ ...held, keys: { openpgp: k3.info }, signed: swapped }, held.serial);
  zone.pin({ ...beta.record, keys: { openpgp: k3.info } }, dirUrl);
  await dns.settled();
  clock.advance(61_000);
  const caught = await alpha.discovery.discover('beta.test');
  t.equal(caught.keys.openpgp?.fingerprint, k2.info.fingerprint, 'the old key stays in use');
  t.equal(caught.violation?.offered, k3.info.fingerprint, 'the violation is reported');
  t.equal(caught.provenance.source, 'pinned');
  t.equal((await alpha.pins.get('beta.test'))?.violations.length, 1, 'and kept for doctor');
  // Put beta's real record back for what follows.
  await dir.putRecord({ ...(await dir.getRecord('beta.test')), keys: { openpgp: k2.info, smime: beta.record.keys.smime }, signed: phase2 }, (await dir.getRecord('beta.test')).serial);
  zone.pin({ ...beta.record, keys: { openpgp: k2.info, smime: beta.record.keys.smime } }, dirUrl);
  // The directory itself refuses the same swap through join.
  clock.advance(1000);
  await rejectsCode(t, postJoin(dirUrl, await signedRecord(beta.record, { openpgp: k3.info }, [k3.priv])), 'DOMAIN_HELD');
});

t.test('serve-stale: when every source fails, the last good answer is served', async (t) => {
  const stale = new Discovery({ sources: { ...sources, resolver: stubResolver(['127.0.0.1:1'], { timeoutMs: 300 }) }, directories: [{ url: 'http://127.0.0.1:1' }], pins: new MemoryPinStore(), cacheTtlMs: 1000 });
  await rejectsCode(t, stale.discover('beta.test'), 'LOOKUP_UNAVAILABLE', 'nothing to serve yet');
  const own = await createHttpServer({ directory: dir, logger: pino({ level: 'silent' }) });
  await own.listen({ host: '127.0.0.1', port: 0 });
  const ownUrl = `http://127.0.0.1:${(own.server.address() as { port: number }).port}`;
  const good = new Discovery({ sources, directories: [{ url: ownUrl }], pins: new MemoryPinStore(), cacheTtlMs: 1000, staleMaxMs: 10_000 });
  const first = await good.discover('alpha.test');
  t.equal(first.cache, 'miss');
  await own.close();
  zone.delete('_mailmesh.alpha.test');
  clock.advance(2000);
  // Own DNS answers (no pin now), the directory is down: not definite, so the cached answer is served.
  const again = await good.discover('alpha.test');
  t.equal(again.cache, 'stale');
  t.equal(again.keys.openpgp?.fingerprint, first.keys.openpgp?.fingerprint);
  clock.advance(20_000);
  await rejectsCode(t, good.discover('alpha.test'), 'LOOKUP_UNAVAILABLE', 'past staleMax nothing is served');
  zone.pin(alpha.record, dirUrl);
});

t.test('leave: a signed statement by the held key removes the domain', async (t) => {
  const url2 = dirUrl;
  const other = await newKey('alpha.test');
  await rejectsCode(t, postLeave(url2, 'alpha.test', alpha.record.keys.openpgp!.fingerprint, other.priv, clock.now()), 'SIGNATURE_INVALID');
  const priv = (await alpha.local.getSecrets('alpha.test')).openpgp!.armored;
  const gone = await postLeave(url2, 'alpha.test', alpha.record.keys.openpgp!.fingerprint, priv, clock.now());
  t.equal(gone.status, 'deleted');
  t.equal(await dir.findRecord('alpha.test'), undefined);
});

t.test('revocation: a new key carrying the old key\'s revocation is followed; a revoked key removes the domain', async (t) => {
  const oldRecord = await dir.getRecord('beta.test');
  const oldFpr = oldRecord.keys.openpgp!.fingerprint;
  // The private key of the current (rolled) key is not kept by the test: revoke the first key of a fresh domain instead.
  const zeta = await gateway('zeta.test');
  zone.pin(zeta.record, dirUrl);
  await postJoin(dirUrl, zeta.record.signed!);
  await dns.settled();
  t.equal((await alpha.discovery.discover('zeta.test')).keys.openpgp?.fingerprint, zeta.record.keys.openpgp!.fingerprint);
  const zetaPriv = await openpgp.readPrivateKey({ armoredKey: (await zeta.local.getSecrets('zeta.test')).openpgp!.armored });
  const revoked = await openpgp.revokeKey({ key: zetaPriv, format: 'object', date: clock.now() });
  const certPackets = new openpgp.PacketList<openpgp.AnyPacket>();
  certPackets.push(revoked.publicKey.revocationSignatures[0]!);
  const revocationCert = openpgp.armor(openpgp.enums.armor.publicKey, certPackets.write());
  // A new key whose record carries the old key's revocation: the directory and alpha both accept it.
  const k = await newKey('zeta.test');
  clock.advance(1000);
  const moved = await signedRecord(zeta.record, { openpgp: k.info }, [k.priv], { revocations: [revocationCert] });
  zone.pin({ ...zeta.record, keys: { openpgp: k.info } }, dirUrl);
  t.match((await postJoin(dirUrl, moved)).provenance.verified, /revoked by itself/);
  await dns.settled();
  clock.advance(61_000);
  const followed = await alpha.discovery.discover('zeta.test');
  t.equal(followed.keys.openpgp?.fingerprint, k.info.fingerprint, 'followed without an alarm');
  t.notOk(followed.violation);
  // The held key revoked by itself (posted as its record): the directory removes the domain, caches drop it.
  const revokedNew = await openpgp.revokeKey({ key: await openpgp.readPrivateKey({ armoredKey: k.priv }), format: 'armored', date: clock.now() });
  const payload = JSON.parse(moved.payload) as { keys: { openpgp: string } };
  payload.keys.openpgp = revokedNew.publicKey;
  const gone = await postJoin(dirUrl, { payload: canonicalize(payload), signature: moved.signature });
  t.equal(gone.status, 'deleted');
  await dns.settled();
  clock.advance(61_000);
  const after = await alpha.discovery.discover('zeta.test');
  t.equal(after.provenance.source, 'none', 'no key is used any more');
  t.same(after.keys, {});
  t.equal(oldFpr, (await dir.getRecord('beta.test')).keys.openpgp!.fingerprint, 'other domains untouched');
});

t.test('no directory configured: "no key" only when every own source answered, never because one is down', async (t) => {
  const own = (over: Partial<typeof sources>) => new Discovery({ sources: { ...sources, ...over }, directories: [], pins: new MemoryPinStore() });
  const none = await own({}).discover('nobody.test');
  t.equal(none.provenance.source, 'none', 'no _mailmesh TXT: a definite "none"');
  await rejectsCode(t, own({ resolver: stubResolver(['127.0.0.1:1'], { timeoutMs: 300 }) }).discover('nobody.test'), 'LOOKUP_UNAVAILABLE', 'the resolver is down');
  // alpha pins a key in its TXT; its web server (well-known record, WKD) is down.
  await rejectsCode(t, own({ wellKnownBase: baseFor('http://127.0.0.1:1/{domain}') }).discover('alpha.test'), 'LOOKUP_UNAVAILABLE', 'the pin is readable, the key is not');
});
