import * as openpgp from 'openpgp';
import t from 'tap';
import { generateOpenPgpKey, openPgpKeyInfo } from '../../directory/openpgp.js';
import type { DomainRecord } from '../../directory/record.js';
import { payloadKeys, recordPayload, signPayload, type RecordPayload } from '../../directory/signed.js';
import { stubResolver } from '../../federation/dns.js';
import { JoinService, postJoin } from '../../federation/join.js';
import { Mirror } from '../../federation/mirror.js';
import { baseFor } from '../../federation/web.js';
import { startHttp } from '../directory/http/helpers.js';
import { memoryDirectory, startWellKnown, startZone, testClock } from './helpers.js';

// The lifecycle through join, over real HTTP: a directory (A) that members post to, a second
// directory (B) mirroring A, the members' DNS for the _mailmesh proof. A roll is posted in two
// steps (announce: keys = current, next = new, signed by current; finish: keys = new, signed by
// new and old); a revocation is a new key whose record carries the old key's revocation by itself.
const clock = testClock();
const zone = await startZone(t);
const { base: webBase } = await startWellKnown(t);
const sources = { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }), wellKnownBase: baseFor(webBase), clock: clock.now, timeoutMs: 2000 };
const dirA = await memoryDirectory(clock.now);
const { base } = await startHttp(t, dirA, undefined, { federation: new JoinService({ directory: dirA, sources, allowPrivateAddresses: true }) });
const dirB = await memoryDirectory(clock.now);
const mirror = new Mirror(base, { directory: dirB });

// The domain CA's CRL travels opaque (base64 of DER, RFC 5280 §5): the directory stores it as signed.
const CRLS = ['a CRL as the domain signed it', 'and one of its earlier CA'].map((c) => Buffer.from(c).toString('base64'));

async function member(domain: string) {
  const local = await memoryDirectory(clock.now);
  const record = await local.addDomain(domain, { gateways: { smtp: [`mx.${domain}:25`] } });
  zone.pin(record, base);
  await postJoin(base, record.signed!);
  clock.advance(1000);
  return { record, priv: (await local.getSecrets(domain)).openpgp!.armored };
}

async function newKey(domain: string) {
  const k = await generateOpenPgpKey(domain as never, { algorithm: 'curve25519', now: clock.now(), validDays: 365 });
  return { priv: k.privateArmored, info: await openPgpKeyInfo(k.publicKey) };
}

/** A record of `base` with `keys`, signed now by `signers`; `extra` goes into the payload. */
async function signed(r: DomainRecord, keys: DomainRecord['keys'], signers: string[], extra: Partial<RecordPayload> = {}) {
  clock.advance(1000);
  return signPayload({ ...recordPayload({ ...r, keys }, clock.now()), ...extra }, signers, clock.now());
}

async function post(body: unknown): Promise<{ status: number; json: DomainRecord }> {
  const res = await fetch(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as DomainRecord };
}

async function lookup(domain: string): Promise<DomainRecord> {
  return (await (await fetch(`${base}/v1/domains/${domain}`)).json()) as DomainRecord;
}

t.test('a roll posted in two steps is accepted at both; next and crls are stored and mirrored', async (t) => {
  const alpha = await member('alpha.test');
  const k2 = await newKey('alpha.test');
  // Announce: the current keys, the next key, signed by the current key.
  const announce = await post(await signed(alpha.record, alpha.record.keys, [alpha.priv], { next: payloadKeys({ openpgp: k2.info }), crls: CRLS }));
  t.equal(announce.status, 201);
  t.match(announce.json.provenance.verified, 'same key');
  const during = await lookup('alpha.test');
  t.equal(during.keys.openpgp?.fingerprint, alpha.record.keys.openpgp!.fingerprint, 'the current key is served');
  t.equal(during.next?.openpgp?.fingerprint, k2.info.fingerprint, 'the next key is published beside it');
  t.same(during.crls, CRLS, 'the CRLs as signed');
  await mirror.sync();
  const mirrored = await dirB.getRecord('alpha.test');
  t.equal(mirrored.next?.openpgp?.fingerprint, k2.info.fingerprint, 'the mirror has next');
  t.same(mirrored.crls, CRLS, 'and the CRLs');

  // Finish: the new keys, signed by the new and the old key; the TXT names the new key.
  const keys = { openpgp: k2.info, smime: alpha.record.keys.smime };
  zone.pin({ ...alpha.record, keys }, base);
  const finish = await post(await signed(alpha.record, keys, [k2.priv, alpha.priv]));
  t.equal(finish.status, 201);
  t.equal(finish.json.keys.openpgp?.fingerprint, k2.info.fingerprint, 'switched');
  t.match(finish.json.provenance.verified, `announced as next by ${alpha.record.keys.openpgp!.fingerprint}`);
  t.notOk(finish.json.next, 'nothing announced any more');
  t.notOk(finish.json.crls, 'the record signed without CRLs has none');
  const r = await mirror.sync();
  t.ok(r.stored.includes('alpha.test'), 'the mirror follows');
  t.equal((await dirB.getRecord('alpha.test')).keys.openpgp?.fingerprint, k2.info.fingerprint);
  t.notOk((await dirB.getRecord('alpha.test')).next);
});

t.test('a finish signed by the new key alone: accepted because it was announced, here and by the mirror', async (t) => {
  const beta = await member('beta.test');
  const k2 = await newKey('beta.test');
  t.equal((await post(await signed(beta.record, beta.record.keys, [beta.priv], { next: payloadKeys({ openpgp: k2.info }) }))).status, 201);
  await mirror.sync();
  zone.pin({ ...beta.record, keys: { openpgp: k2.info } }, base);
  const finish = await post(await signed(beta.record, { openpgp: k2.info }, [k2.priv]));
  t.equal(finish.status, 201);
  t.match(finish.json.provenance.verified, 'announced as next');
  const r = await mirror.sync();
  t.same(r.refused, [], 'the mirror knows the announced next key of its copy');
  t.equal((await dirB.getRecord('beta.test')).keys.openpgp?.fingerprint, k2.info.fingerprint);
  t.match((await dirB.getRecord('beta.test')).provenance.verified, 'announced as next');
});

t.test('a switch without announcement, signed by the old and the new key, is accepted', async (t) => {
  const gamma = await member('gamma.test');
  const k2 = await newKey('gamma.test');
  zone.pin({ ...gamma.record, keys: { openpgp: k2.info } }, base);
  const a = await post(await signed(gamma.record, { openpgp: k2.info }, [k2.priv, gamma.priv]));
  t.equal(a.status, 201);
  t.match(a.json.provenance.verified, `signed by the previous key ${gamma.record.keys.openpgp!.fingerprint}`);
});

t.test('the same change posted twice at once (the CLI and serve): both answered with the record, one stored; a repeated post is 200', async (t) => {
  const theta = await member('theta.test');
  const k2 = await newKey('theta.test');
  const body = await signed(theta.record, theta.record.keys, [theta.priv], { next: payloadKeys({ openpgp: k2.info }) });
  const before = (await lookup('theta.test')).serial;
  // Both read the held serial, check the proof (a DNS lookup each), and write: one of them finds the serial moved.
  const both = await Promise.all([post(body), post(body), post(body)]);
  t.same(both.map((r) => r.status).sort(), [200, 200, 201], `one stored it, the others found it held: ${JSON.stringify(both.map((r) => r.json))}`);
  for (const r of both) t.equal(r.json.next?.openpgp?.fingerprint, k2.info.fingerprint);
  t.equal((await lookup('theta.test')).serial, before + 1, 'stored once');
  const again = await post(body);
  t.equal(again.status, 200, 'a repeated post changes nothing');
  t.equal(again.json.serial, before + 1);
});

t.test('a revocation: the new key, signed by itself, carrying the old key\'s revocation by itself', async (t) => {
  const delta = await member('delta.test');
  const old = await openpgp.readPrivateKey({ armoredKey: delta.priv });
  const revoked = await openpgp.revokeKey({ key: old, format: 'object', date: clock.now(), reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyCompromised } });
  const packets = new openpgp.PacketList<openpgp.AnyPacket>();
  packets.push(revoked.publicKey.revocationSignatures[0]!);
  // RFC 4880 §5.2.1 0x20, armored as a public key block (§6.2) as a revocation certificate travels.
  const cert = openpgp.armor(openpgp.enums.armor.publicKey, packets.write());
  const k2 = await newKey('delta.test');
  zone.pin({ ...delta.record, keys: { openpgp: k2.info } }, base);
  const a = await post(await signed(delta.record, { openpgp: k2.info }, [k2.priv], { revocations: [cert], crls: CRLS }));
  t.equal(a.status, 201);
  t.match(a.json.provenance.verified, `previous key ${delta.record.keys.openpgp!.fingerprint} revoked by itself`);
  t.equal(a.json.keys.openpgp?.fingerprint, k2.info.fingerprint);
  t.same(a.json.crls, CRLS);
  t.notOk(a.json.pendingRecovery, 'no recovery: it has continuity');
  const r = await mirror.sync();
  t.ok(r.stored.includes('delta.test'), 'the mirror follows the revocation');
  t.same((await dirB.getRecord('delta.test')).crls, CRLS);

  // Without the revocation (and without proof for it), the same switch is refused.
  const epsilon = await member('epsilon.test');
  const k3 = await newKey('epsilon.test');
  const res = await fetch(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(await signed(epsilon.record, { openpgp: k3.info }, [k3.priv])) });
  t.equal(res.status, 409);
  t.equal(((await res.json()) as { error: { code: string } }).error.code, 'DOMAIN_HELD');
});

t.test('a member directory\'s own roll and revocation (Directory.announceRoll, finishRoll, revokeKeys) posted over HTTP', async (t) => {
  const member = await memoryDirectory(clock.now);
  const first = await member.addDomain('zeta.test');
  zone.pin(first, base);
  await postJoin(base, first.signed!);
  clock.advance(1000);
  const announced = await member.announceRoll('zeta.test');
  const a = await post(announced.signed);
  t.equal(a.status, 201, 'announce accepted');
  t.same(a.json.next?.openpgp?.fingerprint, announced.next!.openpgp!.fingerprint, 'next published');
  t.same(a.json.next?.smime?.fingerprint, announced.next!.smime!.fingerprint);
  clock.advance(1000);
  const finished = await member.finishRoll('zeta.test', { now: true });
  zone.pin(finished, base);
  const f = await post(finished.signed);
  t.equal(f.status, 201, 'finish accepted');
  t.equal(f.json.keys.openpgp?.fingerprint, announced.next!.openpgp!.fingerprint, 'the announced key is current');
  t.match(f.json.provenance.verified, 'announced as next');
  await mirror.sync();
  t.equal((await dirB.getRecord('zeta.test')).keys.openpgp?.fingerprint, finished.keys.openpgp!.fingerprint, 'the mirror follows the roll');

  clock.advance(1000);
  const revoked = await member.revokeKeys('zeta.test', 'compromised');
  zone.pin(revoked, base);
  const r = await post(revoked.signed);
  t.equal(r.status, 201, 'revocation accepted');
  t.match(r.json.provenance.verified, `previous key ${finished.keys.openpgp!.fingerprint} revoked by itself`);
  t.equal(revoked.crls?.length, 2, 'the revocation carries the CRLs of the old and the new CA');
  t.same(r.json.crls, revoked.crls, 'stored as signed');
  const m = await mirror.sync();
  t.same(m.refused, []);
  t.same((await dirB.getRecord('zeta.test')).crls, revoked.crls, 'and mirrored');
});
