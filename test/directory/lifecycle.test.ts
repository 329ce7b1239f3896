import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import t from 'tap';
import { Directory, type DirectoryOptions } from '../../directory/directory.js';
import type { DomainRecord } from '../../directory/record.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { verifySigned } from '../../directory/signed.js';
import { rejectsCode } from '../helpers.js';

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
