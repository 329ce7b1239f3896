import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import * as openpgp from 'openpgp';
import t from 'tap';
import { Directory, type DirectoryOptions } from '../../directory/directory.js';
import type { DomainRecord } from '../../directory/record.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { checkRecordPayload, recordPayload, revokedBy, verifySigned } from '../../directory/signed.js';
import { caKeyId, readCrl } from '../../directory/smime.js';
import { gpgHome, rejectsCode, run, tempDir, throwsCode } from '../helpers.js';

// Real processes and key generation: slow on a loaded 2-core machine; a hang still ends here.
t.setTimeout(600_000);

const DAY = 86400_000;

/** A directory on a MemoryStore whose clock moves only when the test says. */
async function clocked(start: Date, over: Partial<DirectoryOptions> = {}, store = new MemoryStore(), masterKey = randomBytes(32)) {
  const clock = { now: start };
  const d = await Directory.open(store, masterKey, { keys: { openpgp: 'curve25519', validDays: 365 }, clock: () => clock.now, ...over });
  return { d, clock, advance: (ms: number) => (clock.now = new Date(clock.now.getTime() + ms)), store, masterKey };
}

function caPem(keys: DomainRecord['keys']): string {
  const chain = keys.smime!.chain;
  return chain[chain.length - 1]!;
}

t.test('a roll: announce next keys, refuse to switch early, switch, keep the old keys for retainDays', async (t) => {
  const { d, clock, advance } = await clocked(new Date('2027-03-01T10:00:00Z'));
  const a0 = await d.addDomain('alpha.test');
  await rejectsCode(t, d.finishRoll('alpha.test'), 'ROLL_NOT_ANNOUNCED', 'nothing announced');

  const a1 = await d.announceRoll('alpha.test');
  t.ok(a1.next?.openpgp && a1.next.smime, 'next keys are published');
  t.not(a1.next!.openpgp!.fingerprint, a0.keys.openpgp!.fingerprint);
  t.not(a1.next!.smime!.fingerprint, a0.keys.smime!.fingerprint);
  t.equal(caPem(a1.next!), caPem(a0.keys), 'the next leaf is under the same domain CA');
  t.same(a1.keys, a0.keys, 'the current keys stay');
  t.same(a1.rollover, { announced: clock.now.toISOString(), switchAfter: new Date(clock.now.getTime() + 7 * DAY).toISOString() }, 'keys.overlapDays defaults to 7');
  const v1 = await verifySigned(a1.signed, clock.now);
  t.equal(v1.next?.openpgp?.fingerprint, a1.next!.openpgp!.fingerprint, 'the signed payload carries next');
  t.equal(v1.next?.smime?.fingerprint, a1.next!.smime!.fingerprint);
  t.same(v1.signers, [a0.keys.openpgp!.fingerprint], 'signed by the current key');
  t.equal((await d.lookup({ fingerprint: a1.next!.openpgp!.fingerprint }))?.domain, 'alpha.test', 'found by its next OpenPGP key');
  t.equal((await d.lookup({ fingerprint: a1.next!.smime!.fingerprint }))?.domain, 'alpha.test', 'and by its next certificate');

  const s1 = await d.getSecrets('alpha.test');
  t.equal(s1.openpgp!.armored, (await d.getSecrets('alpha.test')).openpgp!.armored);
  const nextKey = await openpgp.readPrivateKey({ armoredKey: s1.next!.openpgp!.armored });
  t.equal(nextKey.getFingerprint().toUpperCase(), a1.next!.openpgp!.fingerprint, 'the next private key is sealed with the record');
  t.equal(s1.next!.smime!.caKeyPkcs8Pem, s1.smime!.caKeyPkcs8Pem, 'same CA key');

  await rejectsCode(t, d.announceRoll('alpha.test'), 'ROLL_IN_PROGRESS');
  advance(DAY);
  const resigned = await d.resign('alpha.test');
  t.same(resigned.next, a1.next, 'resign keeps the announcement');
  t.equal((await verifySigned(resigned.signed, clock.now)).next?.openpgp?.fingerprint, a1.next!.openpgp!.fingerprint, 'and signs it');

  advance(6 * DAY - 1);
  await rejectsCode(t, d.finishRoll('alpha.test'), 'ROLL_TOO_EARLY', 'one millisecond before switchAfter');
  advance(1);
  const a2 = await d.finishRoll('alpha.test');
  t.same(a2.keys, a1.next, 'the next keys are the keys');
  t.equal(a2.next, undefined);
  t.equal(a2.rollover, undefined);
  t.equal(a2.validity.notAfter, a1.next!.smime!.notAfter);
  const v2 = await verifySigned(a2.signed, clock.now, [a0.keys.openpgp!.armored]);
  t.same(v2.signers.sort(), [a0.keys.openpgp!.fingerprint, a1.next!.openpgp!.fingerprint].sort(), 'signed by the new and the old key');
  t.equal(v2.next, undefined);
  await rejectsCode(t, d.finishRoll('alpha.test'), 'ROLL_NOT_ANNOUNCED', 'once finished');
  t.equal((await d.lookup({ fingerprint: a0.keys.openpgp!.fingerprint })), undefined, 'the old key no longer finds the domain');

  const s2 = await d.getSecrets('alpha.test');
  t.equal(s2.openpgp!.armored, s1.next!.openpgp!.armored);
  t.equal(s2.smime!.keyPkcs8Pem, s1.next!.smime!.keyPkcs8Pem);
  t.equal(s2.next, undefined);
  t.equal(s2.retained?.length, 1);
  const kept = s2.retained![0]!;
  t.same(kept.keys, a0.keys, 'the retained keys carry their public keys');
  t.same(kept.secrets, { openpgp: s1.openpgp, smime: s1.smime }, 'and their private keys');
  t.equal(kept.retired, clock.now.toISOString());
  t.equal(kept.until, new Date(clock.now.getTime() + 30 * DAY).toISOString(), 'keys.retainDays defaults to 30');
  t.notOk(kept.revoked);

  // Mail encrypted to the old key while it was in flight still opens with the retained key.
  const inFlight = await openpgp.encrypt({
    message: await openpgp.createMessage({ text: 'in flight' }),
    encryptionKeys: await openpgp.readKey({ armoredKey: a0.keys.openpgp!.armored }),
    date: clock.now,
  });
  const { data } = await openpgp.decrypt({
    message: await openpgp.readMessage({ armoredMessage: inFlight as string }),
    decryptionKeys: await openpgp.readPrivateKey({ armoredKey: kept.secrets.openpgp!.armored }),
    date: clock.now,
  });
  t.equal(data, 'in flight');

  advance(30 * DAY - 1);
  t.equal(await d.pruneRetained('alpha.test'), 0, 'kept until `until`');
  advance(1);
  t.equal(await d.pruneRetained('alpha.test'), 1, 'erased at `until`');
  t.same((await d.getSecrets('alpha.test')).retained, []);
  t.equal(await d.pruneRetained('alpha.test'), 0);
});

t.test('overlapDays and retainDays come from the options or the call; --now switches at once', async (t) => {
  const { d, clock } = await clocked(new Date('2027-03-01T10:00:00Z'), { keys: { openpgp: 'curve25519', validDays: 365, overlapDays: 2, retainDays: 5 } });
  await d.addDomain('beta.test');
  const b1 = await d.announceRoll('beta.test');
  t.equal(b1.rollover!.switchAfter, new Date(clock.now.getTime() + 2 * DAY).toISOString(), 'keys.overlapDays');
  await rejectsCode(t, d.finishRoll('beta.test'), 'ROLL_TOO_EARLY');
  const b2 = await d.finishRoll('beta.test', { now: true });
  t.same(b2.keys, b1.next, 'now: true switches before switchAfter');
  t.equal((await d.getSecrets('beta.test')).retained![0]!.until, new Date(clock.now.getTime() + 5 * DAY).toISOString(), 'keys.retainDays');
  const b3 = await d.announceRoll('beta.test', { overlapDays: 0 });
  t.equal(b3.rollover!.switchAfter, clock.now.toISOString(), 'the call overrides keys.overlapDays');
  const b4 = await d.finishRoll('beta.test');
  t.same(b4.keys, b3.next, 'an overlap of 0 switches at once');
  t.equal((await d.getSecrets('beta.test')).retained!.length, 2, 'both old key sets retained');
});

function cert(pem: string): x509.X509Certificate {
  return new x509.X509Certificate(pem);
}

/** The reason code (RFC 4880 §5.2.3.23) of a revocation certificate, as openpgp.js reads it applied to its key. */
async function revocationFlag(armoredKey: string, certificate: string): Promise<number | null | undefined> {
  const key = await openpgp.readKey({ armoredKey });
  const { publicKey } = await openpgp.revokeKey({ key, revocationCertificate: certificate, format: 'object' });
  return publicKey.revocationSignatures[0]?.reasonForRevocationFlag;
}

t.test('renew: the same leaf key pair certified again by the domain CA; the previous leaf is retained', async (t) => {
  const { d, clock, advance } = await clocked(new Date('2027-03-01T10:00:00Z'));
  const a0 = await d.addDomain('renew.test');
  const s0 = await d.getSecrets('renew.test');
  advance(300 * DAY);
  const a1 = await d.renewSmime('renew.test');
  const [old, renewed] = [cert(a0.keys.smime!.chain[0]!), cert(a1.keys.smime!.chain[0]!)];
  t.not(a1.keys.smime!.fingerprint, a0.keys.smime!.fingerprint, 'a new certificate');
  t.not(renewed.serialNumber, old.serialNumber);
  t.same(Buffer.from(renewed.publicKey.rawData), Buffer.from(old.publicKey.rawData), 'with the same key pair');
  t.equal(caPem(a1.keys), caPem(a0.keys), 'by the same CA');
  t.ok(await renewed.verify({ publicKey: cert(caPem(a0.keys)).publicKey, signatureOnly: true }), 'signed by it');
  t.equal(a1.keys.smime!.notAfter, new Date(clock.now.getTime() + 365 * DAY).toISOString(), 'valid keys.leafDays (default 365) from now');
  t.same(a1.keys.openpgp, a0.keys.openpgp, 'the OpenPGP key stays');
  t.equal(a1.validity.notAfter, a1.keys.smime!.notAfter);
  t.same((await verifySigned(a1.signed, clock.now)).signers, [a0.keys.openpgp!.fingerprint]);
  const s1 = await d.getSecrets('renew.test');
  t.same({ openpgp: s1.openpgp, smime: s1.smime }, { openpgp: s0.openpgp, smime: s0.smime }, 'the private keys stay');
  t.same(s1.retained?.map((r) => r.keys), [{ smime: a0.keys.smime }], 'the previous leaf is retained');
  t.same(s1.retained![0]!.secrets, { smime: s0.smime });
});

t.test('keys.leafDays: a leaf lives min(leafDays, validDays), when issued, rolled and renewed; the OpenPGP key validDays', async (t) => {
  const { d, clock, advance } = await clocked(new Date('2027-03-01T10:00:00Z'), { keys: { openpgp: 'curve25519', validDays: 730 } });
  const days = (iso: string | null | undefined) => Math.round((Date.parse(iso!) - clock.now.getTime()) / DAY);
  const a0 = await d.addDomain('leaf.test');
  t.equal(days(a0.keys.smime!.notAfter), 365, 'a new leaf: 365 days by default');
  t.equal(days(a0.keys.openpgp!.expires), 730, 'the OpenPGP key: keys.validDays');
  t.equal(days(cert(caPem(a0.keys)).notAfter.toISOString()), 1460, 'the domain CA: twice keys.validDays');
  advance(340 * DAY);
  const a1 = await d.renewSmime('leaf.test');
  t.equal(days(a1.keys.smime!.notAfter), 365, 'a renewed leaf: as long');
  t.equal(caPem(a1.keys), caPem(a0.keys), 'under the same CA');
  t.equal(a1.keys.openpgp!.expires, a0.keys.openpgp!.expires, 'the OpenPGP key unchanged');
  const a2 = await d.announceRoll('leaf.test');
  t.equal(days(a2.next!.smime!.notAfter), 365, 'a rolled leaf: as long');
  t.equal(days(a2.next!.openpgp!.expires), 730);

  const set = await clocked(clock.now, { keys: { openpgp: 'curve25519', validDays: 730, leafDays: 90 } });
  const b0 = await set.d.addDomain('short.test');
  t.equal(days(b0.keys.smime!.notAfter), 90, 'keys.leafDays');
  const capped = await clocked(clock.now, { keys: { openpgp: 'curve25519', validDays: 100, leafDays: 365 } });
  const c0 = await capped.d.addDomain('capped.test');
  t.equal(days(c0.keys.smime!.notAfter), 100, 'never beyond keys.validDays');
});

t.test('the CA roll: near its end, a roll brings a new domain CA; a renewed leaf never outlives its CA', async (t) => {
  // The domain is made with a 365-day validity (the CA: 730 days); the same store opened with
  // a 1000-day validity (leaves too) finds its CA expiring within keys.validDays.
  const short = await clocked(new Date('2027-03-01T10:00:00Z'));
  const a0 = await short.d.addDomain('carol.test');
  const { d, clock } = await clocked(short.clock.now, { keys: { openpgp: 'curve25519', validDays: 1000, leafDays: 1000 } }, short.store, short.masterKey);
  const a1 = await d.renewSmime('carol.test');
  t.equal(a1.keys.smime!.notAfter, cert(caPem(a0.keys)).notAfter.toISOString(), 'the leaf ends with its CA');
  const a2 = await d.announceRoll('carol.test');
  const newCa = cert(caPem(a2.next!));
  t.not(caPem(a2.next!), caPem(a0.keys), 'a new CA is announced');
  t.equal(newCa.notAfter.toISOString(), new Date(clock.now.getTime() + 2000 * DAY).toISOString(), 'for twice keys.validDays');
  t.not((await d.getSecrets('carol.test')).next!.smime!.caKeyPkcs8Pem, (await d.getSecrets('carol.test')).smime!.caKeyPkcs8Pem, 'with its own key');
  const v = await verifySigned(a2.signed, clock.now);
  t.equal(v.next?.smime?.chain.length, 2, 'the new chain verifies as next');
  const a3 = await d.finishRoll('carol.test', { now: true });
  t.equal(caPem(a3.keys), caPem(a2.next!));
});

t.test('revoke (superseded): new keys at once, a revocation certificate and a CRL that gpg and openssl read', async (t) => {
  // Real time: gpg and openssl judge validity by the system clock.
  const { d, clock } = await clocked(new Date());
  const a0 = await d.addDomain('dave.test');
  const renewed = await d.renewSmime('dave.test');
  const s0 = await d.getSecrets('dave.test');
  const a1 = await d.revokeKeys('dave.test', 'superseded');
  t.not(a1.keys.openpgp!.fingerprint, a0.keys.openpgp!.fingerprint, 'a new OpenPGP key');
  t.notSame(Buffer.from(cert(a1.keys.smime!.chain[0]!).publicKey.rawData), Buffer.from(cert(a0.keys.smime!.chain[0]!).publicKey.rawData), 'a new leaf key pair');
  t.equal(caPem(a1.keys), caPem(a0.keys), 'superseded: the same CA');
  const v = await verifySigned(a1.signed, clock.now);
  t.same(v.signers, [a1.keys.openpgp!.fingerprint], 'signed by the new key');
  t.equal(v.payload.revocations?.length, 1);
  t.same(await revokedBy(v.payload.revocations, [a0.keys.openpgp!.armored], clock.now), [a0.keys.openpgp!.fingerprint], 'the certificate revokes the old key');
  t.equal(await revocationFlag(a0.keys.openpgp!.armored, v.payload.revocations![0]!), openpgp.enums.reasonForRevocation.keySuperseded);
  t.same(v.payload.crls, a1.crls, 'the record carries the signed CRLs');
  t.equal(a1.crls?.length, 1, 'one CA, one CRL');

  const crl = await readCrl(Buffer.from(a1.crls![0]!, 'base64'), cert(caPem(a0.keys)));
  t.ok(crl, 'issued by the domain CA');
  t.equal(crl!.number, 1);
  t.same(
    crl!.entries.map((e) => [e.serialNumber, e.reason]).sort(),
    [a0.keys.smime!.serialNumber, renewed.keys.smime!.serialNumber].map((s) => [s, x509.X509CrlReason.superseded]).sort(),
    'it lists the leaf and the earlier certificate of the same key pair',
  );

  const s1 = await d.getSecrets('dave.test');
  t.same(s1.retained?.map((r) => [r.keys.smime?.fingerprint, r.revoked]), [[a0.keys.smime!.fingerprint, true], [renewed.keys.smime!.fingerprint, true]], 'old keys retained, revoked');
  t.same(s1.retained![1]!.secrets, { openpgp: s0.openpgp, smime: s0.smime });
  t.equal(s1.retained![1]!.keys.openpgp?.fingerprint, a0.keys.openpgp!.fingerprint, 'with their public keys');

  const dir = tempDir(t);
  const f = (name: string) => join(dir, name);
  writeFileSync(f('ca.pem'), caPem(a0.keys));
  writeFileSync(f('crl.der'), Buffer.from(a1.crls![0]!, 'base64'));
  writeFileSync(f('old.pem'), renewed.keys.smime!.chain[0]!);
  writeFileSync(f('new.pem'), a1.keys.smime!.chain[0]!);
  const openssl = (args: string[]) => run('openssl', args, { cwd: dir, allowFail: true });
  const check = await openssl(['crl', '-inform', 'DER', '-in', 'crl.der', '-CAfile', 'ca.pem', '-noout']);
  t.equal(check.code, 0);
  t.match(check.stderr, /verify OK/, 'openssl verifies the CRL with the CA');
  const text = (await openssl(['crl', '-inform', 'DER', '-in', 'crl.der', '-noout', '-text'])).stdout.toString();
  t.match(text, /Version 2/, 'a v2 CRL');
  t.match(text, /X509v3 CRL Number:\s*1/, 'with its number');
  t.match(text, /X509v3 Authority Key Identifier/);
  t.match(text, /X509v3 CRL Reason Code:\s*Superseded/, 'and reason codes');
  await openssl(['crl', '-inform', 'DER', '-in', 'crl.der', '-out', 'crl.pem']);
  const revoked = await openssl(['verify', '-crl_check', '-CRLfile', 'crl.pem', '-CAfile', 'ca.pem', 'old.pem']);
  t.not(revoked.code, 0);
  t.match(revoked.stdout.toString() + revoked.stderr, /certificate revoked/, 'openssl: the old leaf is revoked');
  const fresh = await openssl(['verify', '-crl_check', '-CRLfile', 'crl.pem', '-CAfile', 'ca.pem', 'new.pem']);
  t.equal(fresh.code, 0, fresh.stderr);
  t.match(fresh.stdout.toString(), /new.pem: OK/, 'openssl: the new leaf is OK');

  const { gpg } = gpgHome(t);
  await gpg(['--import'], a0.keys.openpgp!.armored);
  const before = (await gpg(['--with-colons', '--list-keys', a0.keys.openpgp!.fingerprint])).stdout.toString();
  t.match(before, /^pub:[^r]:/m, 'gpg: valid before');
  await gpg(['--import'], v.payload.revocations![0]!);
  const after = (await gpg(['--with-colons', '--list-keys', a0.keys.openpgp!.fingerprint])).stdout.toString();
  t.match(after, /^pub:r:/m, 'gpg: revoked after importing the certificate');
  const packets = (await gpg(['--list-packets'], v.payload.revocations![0]!)).stdout.toString();
  t.match(packets, /sigclass 0x20/, 'a key revocation signature');
  t.match(packets, /revocation reason 0x01/, 'reason: superseded');
});

t.test('revoke (compromised): a new CA too, the old CA lists the leaf as keyCompromise, an announced roll ends revoked', async (t) => {
  const { d, clock } = await clocked(new Date());
  const a0 = await d.addDomain('erin.test');
  const a1 = await d.announceRoll('erin.test');
  const a2 = await d.revokeKeys('erin.test', 'compromised');
  t.not(caPem(a2.keys), caPem(a0.keys), 'a new domain CA');
  t.equal(a2.next, undefined, 'the roll is over');
  t.equal(a2.rollover, undefined);
  t.equal(await d.lookup({ fingerprint: a1.next!.openpgp!.fingerprint }), undefined);
  await rejectsCode(t, d.finishRoll('erin.test'), 'ROLL_NOT_ANNOUNCED');
  const v = await verifySigned(a2.signed, clock.now);
  t.same(
    (await revokedBy(v.payload.revocations, [a0.keys.openpgp!.armored, a1.next!.openpgp!.armored], clock.now)).sort(),
    [a0.keys.openpgp!.fingerprint, a1.next!.openpgp!.fingerprint].sort(),
    'the current and the announced key are revoked',
  );
  t.equal(await revocationFlag(a0.keys.openpgp!.armored, v.payload.revocations![0]!), openpgp.enums.reasonForRevocation.keyCompromised);
  t.equal(a2.crls?.length, 2, 'a CRL of the new CA and one of the old');
  const empty = await readCrl(Buffer.from(a2.crls![0]!, 'base64'), cert(caPem(a2.keys)));
  t.same(empty?.entries, [], "the new CA's CRL comes first, empty");
  const crl = await readCrl(Buffer.from(a2.crls![1]!, 'base64'), cert(caPem(a0.keys)));
  t.same(
    crl?.entries.map((e) => [e.serialNumber, e.reason]).sort(),
    [a0.keys.smime!.serialNumber, a1.next!.smime!.serialNumber].map((s) => [s, x509.X509CrlReason.keyCompromise]).sort(),
    "the old CA's CRL lists both leaves",
  );
  const s2 = await d.getSecrets('erin.test');
  t.equal(s2.next, undefined);
  t.same(s2.retained?.map((r) => [r.keys.openpgp?.fingerprint, r.revoked]), [[a0.keys.openpgp!.fingerprint, true], [a1.next!.openpgp!.fingerprint, true]]);

  // A second revocation under the new CA: that CA's CRL lists its leaf; the old CA's CRL and the earlier certificates are carried.
  const a3 = await d.revokeKeys('erin.test', 'superseded');
  t.equal(a3.crls?.length, 2);
  const crl3 = await readCrl(Buffer.from(a3.crls![0]!, 'base64'), cert(caPem(a2.keys)));
  t.same(crl3?.entries.map((e) => e.serialNumber), [a2.keys.smime!.serialNumber], "the new CA's CRL");
  t.equal(crl3?.number, 2, 'the second of that CA');
  t.equal(a3.crls![1], a2.crls![1], "the old CA's CRL is carried as it was");
  const v3 = await verifySigned(a3.signed, clock.now);
  t.equal(v3.payload.revocations?.length, 3, 'the new revocation certificate first, then those carried');
  t.same(await revokedBy(v3.payload.revocations!.slice(0, 1), [a2.keys.openpgp!.armored], clock.now), [a2.keys.openpgp!.fingerprint]);
  const a4 = await d.announceRoll('erin.test');
  t.same(a4.crls, a3.crls, 'a later record carries the CRLs');
  t.same((await verifySigned(a4.signed, clock.now)).payload.revocations, v3.payload.revocations, 'and the revocations');
});

t.test("crlUrl: the leaves the directory issues name it, with their CA's key identifier, as their CRL distribution point", async (t) => {
  const { d } = await clocked(new Date(), { crlUrl: (domain) => `https://dir.example/v1/domains/${domain}/crl` });
  const a0 = await d.addDomain('frank.test');
  const a1 = await d.announceRoll('frank.test');
  const a2 = await d.renewSmime('frank.test');
  const dir = tempDir(t);
  for (const [name, pem] of [['added', a0.keys.smime!.chain[0]!], ['next', a1.next!.smime!.chain[0]!], ['renewed', a2.keys.smime!.chain[0]!]] as const) {
    writeFileSync(join(dir, `${name}.pem`), pem);
    const text = (await run('openssl', ['x509', '-in', `${name}.pem`, '-noout', '-ext', 'crlDistributionPoints'], { cwd: dir })).stdout.toString();
    const ca = name === 'next' ? a1.next!.smime!.chain : a0.keys.smime!.chain;
    const keyId = await caKeyId(cert(ca[ca.length - 1]!));
    t.match(text, `URI:https://dir.example/v1/domains/frank.test/crl/${keyId}`, `${name}: openssl reads the distribution point`);
  }
  const { d: plain } = await clocked(new Date());
  const b = await plain.addDomain('grace.test');
  t.equal(cert(b.keys.smime!.chain[0]!).getExtension(x509.CRLDistributionPointsExtension), null, 'none without crlUrl');
});

t.test('payload crls: a bounded list of base64 of bounded size', async (t) => {
  const base = recordPayload(
    { domain: 'h.test' as DomainRecord['domain'], keys: {}, gateways: { smtp: [] }, formats: ['pgp-mime'], validity: { notBefore: '2027-01-01T00:00:00Z', notAfter: null } },
    new Date('2027-01-01T00:00:00Z'),
  );
  t.same(checkRecordPayload({ ...base, crls: ['MAo=', 'MAo='] }).crls, ['MAo=', 'MAo=']);
  for (const bad of ['', 'not base64!', 'MAo', 'A'.repeat(65_540), 42]) {
    throwsCode(t, () => checkRecordPayload({ ...base, crls: [bad] }), 'SIGNED_RECORD_MALFORMED', `crls [${JSON.stringify(bad).slice(0, 20)}]`);
  }
  for (const bad of ['MAo=', [], Array(9).fill('MAo=')]) {
    throwsCode(t, () => checkRecordPayload({ ...base, crls: bad }), 'SIGNED_RECORD_MALFORMED', `crls ${JSON.stringify(bad).slice(0, 20)}`);
  }
});

t.test('refusals: a domain without private keys here, a renewal past the end of the domain CA', async (t) => {
  const { d, advance } = await clocked(new Date('2027-03-01T10:00:00Z'));
  const a0 = await d.addDomain('ivan.test');
  const { serial: _s, ...joined } = { ...a0, domain: 'joined.test' as DomainRecord['domain'] };
  await d.putRecord({ ...joined, provenance: { ...a0.provenance, source: 'joined' } }, null);
  for (const op of [() => d.announceRoll('joined.test'), () => d.renewSmime('joined.test'), () => d.revokeKeys('joined.test', 'superseded'), () => d.finishRoll('joined.test')]) {
    await rejectsCode(t, op, 'DOMAIN_NOT_FOUND', 'no private keys here');
  }
  await rejectsCode(t, d.announceRoll('nobody.test'), 'DOMAIN_NOT_FOUND');
  advance(730 * DAY);
  await rejectsCode(t, d.renewSmime('ivan.test'), 'KEY_EXPIRED', 'the domain CA has expired: only a roll helps');
});
