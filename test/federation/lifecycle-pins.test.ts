import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t, { type Test } from 'tap';
import { openPgpKeyOwner, smimeaData, smimeaOwner } from '../../directory/dane.js';
import { domainKeyAddress, parseDomain } from '../../directory/domain.js';
import { TYPE } from '../../directory/dnswire.js';
import { canonicalize } from '../../directory/jcs.js';
import type { DomainRecord } from '../../directory/record.js';
import { payloadKeys } from '../../directory/signed.js';
import { lookupText, renderDoctor } from '../../cli/commands.js';
import { stubResolver } from '../../federation/dns.js';
import { doctor } from '../../federation/doctor.js';
import { Discovery, type DirectoryRef } from '../../federation/discovery.js';
import { FilePinStore, MemoryPinStore } from '../../federation/pins.js';
import { pinsAccept, pinsForget, pinsList, pinsShow } from '../../cli/pinsadmin.js';
import { baseFor } from '../../federation/web.js';
import { rejectsCode, tempDir } from '../helpers.js';
import { memoryDirectory, publishOpenPgpKey, startZone, testClock } from './helpers.js';
import { keyset as newKeyset, record as signedRecord, revocationOf as revocation, startDirectory, type Keys } from './lifecycle-helpers.js';

// What peers do about a domain's key lifecycle (issue #10 "Peers"): next keys, the pin's move at
// the switch, previous keys kept for the retention, revoked keys refused from every source,
// violations that name two different keys, `mailmesh pins` and doctor. Directories are loopback HTTP
// servers answering `GET /v1/domains/{domain}` with signed records the test builds.

const DAY = 86_400_000;
const clock = testClock();
const zone = await startZone(t);
const sources = { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }), wellKnownBase: baseFor('http://127.0.0.1:1/{domain}'), clock: clock.now, timeoutMs: 2000 };

const keyset = (domain: string) => newKeyset(domain, clock.now);
const record = (base: Keys, keys: DomainRecord['keys'], signers: Keys[], extra: Parameters<typeof signedRecord>[4] = {}) => signedRecord(base, keys, signers, clock.now(), extra);
const revocationOf = (k: Keys) => revocation(k, clock.now());
const discovery = (directories: DirectoryRef[], pins: MemoryPinStore, o: { cacheTtlMs?: number; retainMs?: number } = {}) => new Discovery({ sources, directories, pins, cacheTtlMs: o.cacheTtlMs ?? 0, retainMs: o.retainMs });
const pgp = (k: { openpgp?: { fingerprint: string } } | undefined) => k?.openpgp?.fingerprint;
const smime = (k: { smime?: { fingerprint: string } } | undefined) => k?.smime?.fingerprint;

t.test('a roll: next is announced and both are accepted, the pin moves at the switch, the old keys stay previous for retainMs', async (t) => {
  const [current, lagging] = [await startDirectory(t), await startDirectory(t)];
  const [k1, k2] = [await keyset('roll.test'), await keyset('roll.test')];
  const pins = new MemoryPinStore();
  const peer = discovery([{ url: current.url }], pins, { cacheTtlMs: 60_000, retainMs: 10 * DAY });
  const announce = await record(k1, k1.keys, [k1], { next: payloadKeys(k2.keys) });
  current.records.set('roll.test', announce);
  const during = await peer.discover('roll.test');
  t.equal(pgp(during.keys), pgp(k1.keys), 'the current key during the overlap');
  t.equal(pgp(during.next), pgp(k2.keys), 'the announced next OpenPGP key');
  t.equal(smime(during.next), smime(k2.keys), 'and S/MIME key');
  t.notOk(during.previous);
  t.match(lookupText(during).text, `next        pgp=${pgp(k2.keys)} smime=${smime(k2.keys)} (announced)`);

  // The switch: the new keys, signed by the new and the old key.
  const after = await pastTtl(t, peer, current, 'roll.test', await record(k1, k2.keys, [k2, k1]), k1);
  t.equal(pgp(after.keys), pgp(k2.keys), 'the pin moved at the switch');
  t.notOk(after.violation);
  t.notOk(after.next, 'nothing announced any more');
  t.equal(after.previous?.length, 1);
  t.equal(pgp(after.previous?.[0]), pgp(k1.keys), 'the old OpenPGP key is previous');
  t.equal(smime(after.previous?.[0]), smime(k1.keys), 'and the old S/MIME key');
  t.match(lookupText(after).text, `previous    pgp=${pgp(k1.keys)} smime=${smime(k1.keys)}`);
  const pin = await pins.get('roll.test');
  t.equal(pgp(pin?.keys), pgp(k2.keys));
  t.equal(pin?.previous?.[0]?.until, new Date(clock.now().getTime() + 10 * DAY).toISOString(), 'kept for retainMs');

  // A renewal: the same OpenPGP key, a new S/MIME leaf, in a record it signed; the old leaf is previous too.
  const renewed = await keyset('roll.test');
  current.records.set('roll.test', await record(k2, { openpgp: k2.keys.openpgp, smime: renewed.keys.smime }, [k2]));
  const afterRenewal = await pastTtl(t, peer, current, 'roll.test', current.records.get('roll.test')!, k2);
  t.equal(smime(afterRenewal.keys), smime(renewed.keys), 'the new leaf');
  t.same(afterRenewal.previous?.map((p) => [pgp(p), smime(p)]), [[pgp(k1.keys), smime(k1.keys)], [undefined, smime(k2.keys)]], 'the old leaf beside the rolled keys');
  current.records.set('roll.test', await record(k1, k2.keys, [k2, k1]));
  await pastTtl(t, peer, current, 'roll.test', current.records.get('roll.test')!, k2);

  // A directory behind the switch still serves the announcement: the pin stays, no alarm, not moved back.
  lagging.records.set('roll.test', announce);
  const behind = await discovery([{ url: lagging.url }], pins).discover('roll.test');
  t.equal(behind.provenance.source, 'pinned');
  t.equal(pgp(behind.keys), pgp(k2.keys), 'the new keys stay in use');
  t.match(behind.provenance.verified, `still serves the previous key pgp=${pgp(k1.keys)}`);
  t.notOk(behind.violation, 'a lagging directory is no violation');
  t.equal(pgp((await pins.get('roll.test'))?.keys), pgp(k2.keys), 'the pin is not moved back');
  const both = await discovery([{ url: lagging.url }, { url: current.url }], pins).discover('roll.test');
  t.equal(both.provenance.source, 'directory-https', 'a later directory with the current record is the answer');
  t.equal(both.provenance.origin, current.url);

  // Past the retention the old keys are gone: the old key is a change like any other again.
  clock.advance(11 * DAY);
  const later = await peer.discover('roll.test');
  t.notOk(later.previous, 'dropped after retainMs');
  t.notOk((await pins.get('roll.test'))?.previous);
  const stale = await discovery([{ url: lagging.url }], pins).discover('roll.test');
  t.equal(stale.violation?.offered, pgp(k1.keys), 'an unannounced key change stays a pin violation');
  t.equal(stale.violation?.pinned, pgp(k2.keys));
  t.equal(pgp(stale.keys), pgp(k2.keys));
});

/** The directory serves a new record: within the cache TTL (60 s) the peer keeps the keys `was`; past it, its answer. */
async function pastTtl(t: Test, peer: Discovery, dir: { records: Map<string, Partial<DomainRecord>> }, domain: string, next: Partial<DomainRecord>, was: Keys) {
  dir.records.set(domain, next);
  clock.advance(30_000);
  t.equal(pgp((await peer.discover(domain)).keys), pgp(was.keys), 'the cached answer within its TTL');
  clock.advance(31_000);
  return peer.discover(domain);
}

/** Two directories serving a domain's first record (one will lag behind), two generations of its keys, and a peer's pins. */
async function twoDirectories(t: Test, domain: string) {
  const [current, stale] = [await startDirectory(t), await startDirectory(t)];
  const [k1, k2] = [await keyset(domain), await keyset(domain)];
  const old = await record(k1, k1.keys, [k1]);
  current.records.set(domain, old);
  stale.records.set(domain, old);
  return { current, stale, k1, k2, old, pins: new MemoryPinStore() };
}

t.test('revocation: peers stop using the revoked key within their cache TTL; a revoked key offered by a directory is refused', async (t) => {
  const { current, stale, k1, k2, pins } = await twoDirectories(t, 'revoke.test');
  const peer = discovery([{ url: current.url }, { url: stale.url }], pins, { cacheTtlMs: 60_000 });
  t.equal(pgp((await peer.discover('revoke.test')).keys), pgp(k1.keys));

  // The domain revokes its key: new keys at once, the record carries the old key's revocation.
  const after = await pastTtl(t, peer, current, 'revoke.test', await record(k1, k2.keys, [k2], { revocations: [await revocationOf(k1)] }), k1);
  t.equal(pgp(after.keys), pgp(k2.keys), 'past the TTL the revoked key is no longer used');
  t.notOk(after.violation);
  t.notOk(after.previous, 'a revoked key is never previous');
  const pin = await pins.get('revoke.test');
  t.ok(pin?.revoked?.includes(pgp(k1.keys)!), 'the pin remembers the revoked OpenPGP key');
  t.ok(pin?.revoked?.includes(smime(k1.keys)!), 'and the S/MIME key that was pinned with it');

  // A second directory still serves the old record (no revocation in it): refused.
  const refused = await discovery([{ url: stale.url }], pins).discover('revoke.test');
  t.equal(pgp(refused.keys), pgp(k2.keys), 'the current keys stay in use');
  t.equal(refused.provenance.source, 'pinned');
  t.equal(refused.violation?.revoked, true, 'a revoked key offered');
  t.equal(refused.violation?.offered, pgp(k1.keys));
  t.equal(refused.violation?.pinned, pgp(k2.keys), 'the violation names two different keys');
  // Not even the administrator takes it.
  await rejectsCode(t, discovery([{ url: stale.url }], pins).discover('revoke.test', { accept: pgp(k1.keys)! }), 'KEY_REVOKED');
  await rejectsCode(t, pinsAccept({ pins, discovery: discovery([{ url: stale.url }], pins) }, 'revoke.test'), 'KEY_REVOKED');
  t.match(renderDoctor(await doctor('revoke.test', { sources, directories: [], pins })), /offered [0-9A-F]{40} \(revoked\)/);
});

t.test('a revocation seen before its new keys can be accepted: no key, a new one awaited for staleMaxMs (never plain text), then the new keys', async (t) => {
  const { current, k1, k2, pins } = await twoDirectories(t, 'waiting.test');
  // The domain's own TXT pins the old keys, as it does until the operator publishes the new line.
  zone.pin(k1.record);
  t.teardown(() => zone.delete('_mailmesh.waiting.test'));
  const peer = new Discovery({ sources, directories: [{ url: current.url }], pins, cacheTtlMs: 0, negativeTtlMs: 0, staleMaxMs: DAY });
  t.equal(pgp((await peer.discover('waiting.test')).keys), pgp(k1.keys));
  // Revoked: the directory serves the new keys with the old key's revocation; the TXT has not caught up.
  current.records.set('waiting.test', await record(k1, k2.keys, [k2], { revocations: [await revocationOf(k1)] }));
  const during = await peer.discover('waiting.test');
  t.same(during.keys, {}, 'the revoked key is not used');
  t.equal(during.provenance.source, 'none');
  t.equal(during.awaitingKeysUntil, new Date(clock.now().getTime() + DAY).toISOString(), 'a new key is awaited until staleMaxMs after the revocation');
  t.same((await pins.get('waiting.test'))?.keys, {}, 'the pin keeps no keys');
  clock.advance(3_600_000);
  const later = await peer.discover('waiting.test');
  t.same(later.keys, {});
  t.equal(later.awaitingKeysUntil, during.awaitingKeysUntil, 'from the revocation, not from each lookup');
  // The TXT names the new keys: they are pinned, nothing is awaited any more.
  zone.pin(k2.record);
  const fresh = await peer.discover('waiting.test');
  t.equal(pgp(fresh.keys), pgp(k2.keys), 'the new keys once the domain proves them');
  t.notOk(fresh.awaitingKeysUntil);
  t.notOk((await pins.get('waiting.test'))?.droppedAt, 'the pin has keys again');
  // A domain that revoked and never proves new keys: past staleMaxMs it is a domain without keys.
  const { current: gone, k1: g1, k2: g2, pins: gonePins } = await twoDirectories(t, 'waiting.test');
  zone.pin(g1.record);
  const other = new Discovery({ sources, directories: [{ url: gone.url }], pins: gonePins, cacheTtlMs: 0, negativeTtlMs: 0, staleMaxMs: DAY });
  t.equal(pgp((await other.discover('waiting.test')).keys), pgp(g1.keys));
  gone.records.set('waiting.test', await record(g1, g2.keys, [g2], { revocations: [await revocationOf(g1)] }));
  t.ok((await other.discover('waiting.test')).awaitingKeysUntil);
  clock.advance(DAY + 1000);
  const over = await other.discover('waiting.test');
  t.same(over.keys, {});
  t.notOk(over.awaitingKeysUntil, 'nothing awaited past staleMaxMs');
});

t.test('a key that carries its own revocation: dropped, and no directory brings it back', async (t) => {
  const { current, stale, k1, k2: k3, old, pins } = await twoDirectories(t, 'selfrevoke.test');
  t.equal(pgp((await discovery([{ url: current.url }], pins).discover('selfrevoke.test')).keys), pgp(k1.keys));
  // The directory now serves the key with its revocation signature attached.
  const revoked = await openpgp.revokeKey({ key: await openpgp.readPrivateKey({ armoredKey: k1.priv }), format: 'armored', date: clock.now() });
  const payload = JSON.parse(old.signed!.payload) as { keys: { openpgp: string } };
  payload.keys.openpgp = revoked.publicKey;
  current.records.set('selfrevoke.test', { domain: 'selfrevoke.test' as never, signed: { payload: canonicalize(payload), signature: old.signed!.signature } });
  const gone = await discovery([{ url: current.url }], pins).discover('selfrevoke.test');
  t.equal(gone.provenance.source, 'none', 'no key is used');
  const pin = await pins.get('selfrevoke.test');
  t.same(pin?.keys, {}, 'the pin keeps no keys');
  t.ok(pin?.revoked?.includes(pgp(k1.keys)!), 'only the revoked fingerprints');
  const refused = await discovery([{ url: stale.url }], pins).discover('selfrevoke.test');
  t.equal(refused.provenance.source, 'none', 'the stale directory\'s copy is refused');
  t.equal(refused.violation?.revoked, true);
  t.same(refused.keys, {});
  // A new key (not the revoked one) is pinned on first use again.
  current.records.set('selfrevoke.test', await record(k3, k3.keys, [k3]));
  const fresh = await discovery([{ url: current.url }], pins).discover('selfrevoke.test');
  t.equal(pgp(fresh.keys), pgp(k3.keys));
  t.ok((await pins.get('selfrevoke.test'))?.revoked?.includes(pgp(k1.keys)!), 'still remembered');
});

t.test('the violation names the two keys that differ when the domain\'s own TXT pins another S/MIME (or OpenPGP) key', async (t) => {
  const [k1, k2] = [await keyset('txt.test'), await keyset('txt.test')];
  const owner = domainKeyAddress(parseDomain('txt.test'));
  await publishOpenPgpKey(zone, openPgpKeyOwner(owner), k1.record);
  const d = smimeaData(k1.keys.smime!.chain[0]!);
  zone.set(smimeaOwner(owner), TYPE.SMIMEA, [Buffer.concat([Buffer.from([d.usage, d.selector, d.matchingType]), d.data])]);
  zone.pin(k1.record);
  const pins = new MemoryPinStore();
  t.notOk((await discovery([], pins).discover('txt.test')).violation, 'pinned from the domain\'s DNS');
  // Same OpenPGP key, the TXT names another certificate than the SMIMEA serves.
  zone.pin({ ...k1.record, keys: { openpgp: k1.keys.openpgp, smime: k2.keys.smime } });
  const v1 = (await discovery([], pins).discover('txt.test')).violation;
  t.equal(v1?.key, 'smime');
  t.not(v1?.offered, v1?.pinned, 'two different keys');
  t.equal(v1?.offered, `S/MIME ${smime(k1.keys)}`);
  t.match(v1?.pinned, `S/MIME ${smime(k2.keys)}`);
  t.match(v1?.pinned, '_mailmesh TXT', 'says who pins it');
  // The reverse: the same certificate, the TXT names another OpenPGP key.
  zone.pin({ ...k1.record, keys: { openpgp: k2.keys.openpgp, smime: k1.keys.smime } });
  const v2 = (await discovery([], pins).discover('txt.test')).violation;
  t.equal(v2?.key, 'openpgp');
  t.not(v2?.offered, v2?.pinned, 'two different keys');
  t.equal(v2?.offered, pgp(k1.keys));
  t.match(v2?.pinned, pgp(k2.keys)!);
  zone.delete(`_mailmesh.txt.test`);
});

t.test('pins list|show|accept|forget settle an unannounced key change', async (t) => {
  const dir = await startDirectory(t);
  const [k1, k3] = [await keyset('swap.test'), await keyset('swap.test')];
  dir.records.set('swap.test', await record(k1, k1.keys, [k1]));
  const pins = new MemoryPinStore();
  const admin = { pins, discovery: discovery([{ url: dir.url }], pins) };
  await admin.discovery.discover('swap.test');
  dir.records.set('swap.test', await record(k3, k3.keys, [k3]));
  const caught = await admin.discovery.discover('swap.test');
  t.equal(caught.violation?.offered, pgp(k3.keys));
  t.match((await pinsList(pins)).text, new RegExp(`^swap\\.test\\tpgp=${pgp(k1.keys)} smime=${smime(k1.keys)}\\ttrust=signed-record\\tnext=-\\tviolations=1$`, 'm'));
  const shown = (await pinsShow(pins, 'swap.test')).text;
  t.match(shown, `openpgp     ${pgp(k1.keys)}`);
  t.match(shown, `openpgp: directory-https ${dir.url} offered ${pgp(k3.keys)}; pinned ${pgp(k1.keys)}`);
  const doc = await doctor('swap.test', { sources, directories: [], pins });
  t.match(doc.find((r) => r.check === 'pin violations')?.fix, 'mailmesh pins show swap.test');
  t.match(doc.find((r) => r.check === 'pin violations')?.fix, 'mailmesh pins accept swap.test');
  t.match(doc.find((r) => r.check === 'pin violations')?.fix, 'mailmesh pins forget swap.test');

  const accepted = await pinsAccept(admin, 'swap.test');
  t.match(accepted.text, `accepted ${pgp(k3.keys)}`);
  const pin = await pins.get('swap.test');
  t.equal(pgp(pin?.keys), pgp(k3.keys), 'the offered key is pinned');
  t.same(pin?.violations, [], 'the settled violations are cleared');
  t.equal(pgp(pin?.previous?.[0]?.keys), pgp(k1.keys), 'the old key is previous');
  t.notOk((await admin.discovery.discover('swap.test')).violation, 'and used without an alarm');
  // Nothing to accept; then a violation whose key no source offers any more.
  await rejectsCode(t, pinsAccept(admin, 'swap.test'), 'NOT_FOUND');
  await pins.put('swap.test', { ...pin!, violations: [{ domain: 'swap.test', key: 'openpgp', pinned: pgp(k3.keys)!, offered: 'A'.repeat(40), source: 'x', at: clock.now().toISOString() }] });
  await rejectsCode(t, pinsAccept(admin, 'swap.test'), 'NOT_FOUND');
  t.equal(pgp((await pins.get('swap.test'))?.keys), pgp(k3.keys), 'the pin unchanged');

  t.match((await pinsForget(admin, 'swap.test')).text, 'deleted');
  t.equal(await pins.get('swap.test'), undefined);
  t.equal((await pinsList(pins)).text, 'no pins');
  await rejectsCode(t, pinsShow(pins, 'swap.test'), 'NOT_FOUND');
});

t.test('the pins file: a process sees what another process wrote, and does not write back what it deleted', async (t) => {
  const file = join(tempDir(t), 'pins.json');
  const serve = new FilePinStore(file);
  const cli = new FilePinStore(file);
  const entry = { keys: {}, at: clock.now().toISOString(), violations: [] };
  await serve.put('a.test', entry);
  t.same(await cli.get('a.test'), entry, 'read again after the other process wrote');
  await cli.delete('a.test');
  t.equal(await serve.get('a.test'), undefined, 'the deletion is seen');
  await serve.put('b.test', entry);
  t.same(await cli.list(), ['b.test'], 'a later write by the first process does not bring the deleted pin back');
});

t.test('doctor: warns before expiry, passes a directory serving the current or the announced next key, shows a pending recovery', async (t) => {
  const [dirA, dirB] = [await startDirectory(t), await startDirectory(t)];
  const [k1, k2] = [await keyset('doc.test'), await keyset('doc.test')];
  const directories = [{ url: dirA.url }, { url: dirB.url }];
  const rest = (rows: Awaited<ReturnType<typeof doctor>>, url: string) => rows.find((r) => r.check === `REST record at ${url}`);
  // During the roll: one directory has the announcement, the other already the next keys.
  dirA.records.set('doc.test', await record(k1, k1.keys, [k1], { next: payloadKeys(k2.keys) }));
  clock.advance(1000);
  dirB.records.set('doc.test', await record(k1, k2.keys, [k2, k1]));
  const local = { ...k1.record, next: k2.keys };
  const rolling = await doctor('doc.test', { sources, directories, local });
  t.equal(rest(rolling, dirA.url)?.result, 'pass', renderDoctor(rolling));
  t.match(rest(rolling, dirA.url)?.detail, 'announces next');
  t.equal(rest(rolling, dirB.url)?.result, 'pass', 'the announced next keys pass');

  // After the switch, a directory still holds the old key: post the record again, never "publish the old key".
  const switched = { ...k1.record, keys: k2.keys };
  const after = await doctor('doc.test', { sources, directories, local: switched });
  t.equal(rest(after, dirA.url)?.result, 'fail');
  t.match(rest(after, dirA.url)?.fix, `mailmesh join ${dirA.url}`);
  t.match(rest(after, dirA.url)?.fix, 'mailmesh domain roll doc.test --status');
  t.notMatch(rest(after, dirA.url)?.fix, 'old or foreign');
  t.notMatch(renderDoctor(after), `fix: publish in the domain's DNS: _mailmesh.doc.test. 300 IN TXT "v=mm1; pgp=${pgp(k1.keys)}`);
  // Not local: the newest record decides what is expected, not the first directory's older one.
  const peerView = await doctor('doc.test', { sources, directories });
  t.equal(rest(peerView, dirB.url)?.result, 'pass');
  t.match(renderDoctor(peerView), `pgp=${pgp(k2.keys)}`);
  t.notMatch(renderDoctor(peerView), `TXT "v=mm1; pgp=${pgp(k1.keys)}`, 'never asks for the old key in the TXT');

  // Expiry: 30 days before, a warning naming the roll; expired, a failure.
  const expires = Date.parse(k1.keys.openpgp!.expires!);
  const at = (ms: number) => ({ ...sources, clock: () => new Date(ms) });
  const soon = await doctor('doc.test', { sources: at(expires - 20 * DAY), directories: [], local: k1.record });
  const validity = soon.find((r) => r.check === 'key validity');
  t.equal(validity?.result, 'warn', renderDoctor(soon));
  t.match(validity?.fix, 'mailmesh domain roll doc.test');
  t.match(renderDoctor(soon), /^WARN {2}key validity/m);
  t.equal((await doctor('doc.test', { sources: at(expires - 40 * DAY), directories: [], local: k1.record })).find((r) => r.check === 'key validity')?.result, 'pass');
  t.equal((await doctor('doc.test', { sources: at(expires + DAY), directories: [], local: k1.record })).find((r) => r.check === 'key validity')?.result, 'fail');

  // A pending recovery, as the REST face shows it.
  const since = clock.now().toISOString();
  const effective = new Date(clock.now().getTime() + 3 * DAY).toISOString();
  dirA.records.set('doc.test', { ...(await record(k1, k1.keys, [k1])), pendingRecovery: { openpgp: pgp(k2.keys)!, since, effective } });
  const held = await doctor('doc.test', { sources, directories: [{ url: dirA.url }], local: k1.record });
  const rec = held.find((r) => r.check === `recovery at ${dirA.url}`);
  t.equal(rec?.result, 'warn', renderDoctor(held));
  t.match(rec?.detail, `pgp=${pgp(k2.keys)}`);
  t.match(rec?.detail, effective);
  t.match(rec?.fix, 'mailmesh domain veto doc.test');
});

t.test('a peer follows the real Directory lifecycle: announceRoll, finishRoll, renewSmime, revokeKeys', async (t) => {
  const [current, stale] = [await startDirectory(t), await startDirectory(t)];
  const own = await memoryDirectory(clock.now);
  const serve = (r: DomainRecord) => current.records.set(r.domain, { domain: r.domain, keys: r.keys, signed: r.signed });
  const first = await own.addDomain('real.test');
  serve(first);
  const pins = new MemoryPinStore();
  const peer = discovery([{ url: current.url }], pins, { retainMs: 10 * DAY });
  t.equal(pgp((await peer.discover('real.test')).keys), pgp(first.keys));

  const announced = await own.announceRoll('real.test');
  serve(announced);
  const during = await peer.discover('real.test');
  t.equal(pgp(during.keys), pgp(first.keys));
  t.equal(pgp(during.next), pgp(announced.next), 'the announced next key');
  t.equal(smime(during.next), smime(announced.next));

  const finished = await own.finishRoll('real.test', { now: true });
  serve(finished);
  const switched = await peer.discover('real.test');
  t.equal(pgp(switched.keys), pgp(announced.next), 'the pin moved at the switch');
  t.notOk(switched.violation);
  t.equal(pgp(switched.previous?.[0]), pgp(first.keys), 'the old key is previous');

  const renewed = await own.renewSmime('real.test');
  serve(renewed);
  const afterRenewal = await peer.discover('real.test');
  t.equal(smime(afterRenewal.keys), smime(renewed.keys), 'the renewed leaf');
  t.notOk(afterRenewal.violation);
  t.ok(afterRenewal.previous?.some((p) => smime(p) === smime(finished.keys)), 'the old leaf is previous');

  // Revoked: the record carries the revocation; a stale directory with the record before it is refused.
  stale.records.set('real.test', { domain: 'real.test' as never, keys: renewed.keys, signed: renewed.signed });
  const revoked = await own.revokeKeys('real.test', 'compromised');
  serve(revoked);
  const after = await peer.discover('real.test');
  t.equal(pgp(after.keys), pgp(revoked.keys), 'the new keys at once');
  t.notOk(after.violation);
  t.notOk(after.previous?.some((p) => pgp(p) === pgp(renewed.keys)), 'the revoked key is not previous');
  const refused = await discovery([{ url: stale.url }], pins).discover('real.test');
  t.equal(refused.violation?.revoked, true, 'a revoked key offered by a directory is refused');
  t.equal(pgp(refused.keys), pgp(revoked.keys));
});
