import t from 'tap';
import { generateOpenPgpKey } from '../../directory/openpgp.js';
import type { DomainRecord, SignedRecord } from '../../directory/record.js';
import { recordPayload, signPayload, VETO_TYPE } from '../../directory/signed.js';
import { stubResolver } from '../../federation/dns.js';
import { JoinService, postJoin, postLeave } from '../../federation/join.js';
import { Mirror } from '../../federation/mirror.js';
import { postVeto } from '../../federation/recovery.js';
import { baseFor } from '../../federation/web.js';
import { startHttp } from '../directory/http/helpers.js';
import { rejectsCode } from '../helpers.js';
import { memoryDirectory, startWellKnown, startZone, testClock } from './helpers.js';

// Key recovery (docs/lifecycle.md "Recover") over real HTTP: a directory with an injected clock,
// the members' DNS (a test zone with their _mailmesh pins), members that lose their key and come
// back with a new one. The hold-down is the default, 72 h.
const HOLD_MS = 72 * 3600_000;
const clock = testClock();
const zone = await startZone(t);
const { base: webBase } = await startWellKnown(t);
const sources = { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }), wellKnownBase: baseFor(webBase), clock: clock.now, timeoutMs: 2000 };
const dir = await memoryDirectory(clock.now);
const joins = new JoinService({ directory: dir, sources, allowPrivateAddresses: true });
const { base } = await startHttp(t, dir, undefined, { federation: joins });

/** A member: its own store with its domain (keys and signed record). */
async function member(domain: string) {
  const local = await memoryDirectory(clock.now);
  const record = await local.addDomain(domain, { gateways: { smtp: [`mx.${domain}:25`] } });
  return { local, record, priv: (await local.getSecrets(domain)).openpgp!.armored };
}

/** The member's record signed again now (a post must be newer than the record held). */
async function resigned(m: Awaited<ReturnType<typeof member>>): Promise<SignedRecord> {
  return signPayload(recordPayload(m.record, clock.now()), [m.priv], clock.now());
}

/** A raw POST: the status and the JSON answer. */
async function post(path: string, body: unknown): Promise<{ status: number; json: DomainRecord & { error?: { code: string; message: string } } }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as DomainRecord & { error?: { code: string; message: string } } };
}

async function lookup(domain: string): Promise<DomainRecord> {
  return (await (await fetch(`${base}/v1/domains/${domain}`)).json()) as DomainRecord;
}

/** A member joined with its pin, and the same domain's new key after the old one was lost (not yet pinned). */
async function joinedThenLost(domain: string) {
  const old = await member(domain);
  zone.pin(old.record, base);
  await postJoin(base, old.record.signed!);
  clock.advance(1000);
  return { old, lost: await member(domain) };
}

t.test('without proof of control for the new key: DOMAIN_HELD says which path applies', async (t) => {
  const { old, lost } = await joinedThenLost('nokey.test');
  const a = await post('/v1/domains', lost.record.signed);
  t.equal(a.status, 409);
  t.equal(a.json.error?.code, 'DOMAIN_HELD');
  t.match(a.json.error?.message, `held by ${old.record.keys.openpgp!.fingerprint}`);
  t.match(a.json.error?.message, 'roll with the old key (mailmesh domain roll on the domain\'s gateway)');
  t.match(a.json.error?.message, 'if the old key is lost, publish _mailmesh TXT naming the new key and post again: a recovery starts with a hold-down of 72 h');
  t.notOk((await lookup('nokey.test')).pendingRecovery, 'nothing pending');
  t.equal((await lookup('nokey.test')).keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint);

  // A domain this directory holds itself: an operator of this directory holds it.
  await dir.addDomain('own.test');
  const own = await member('own.test');
  zone.pin(own.record, base);
  const b = await post('/v1/domains', own.record.signed);
  t.equal(b.status, 409);
  t.equal(b.json.error?.code, 'DOMAIN_HELD');
  t.match(b.json.error?.message, 'own.test is held by an operator of this directory');
  t.notMatch(b.json.error?.message, /local|imported/, 'the refusal names no source: an imported record may be unpublished');
  t.notMatch(b.json.error?.message, /hold-down/, 'no recovery for a domain held by the operator');
});

t.test('a recovery is held down: 202 with the held record, pendingRecovery shown; after the hold-down it takes effect', async (t) => {
  const { old, lost } = await joinedThenLost('lost.test');
  const held = await lookup('lost.test');
  zone.pin(lost.record, base);
  const started = clock.now();
  const a = await post('/v1/domains', lost.record.signed);
  t.equal(a.status, 202, 'accepted for later');
  t.equal(a.json.keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint, 'the answer is the held record');
  t.same(a.json.pendingRecovery, {
    openpgp: lost.record.keys.openpgp!.fingerprint,
    smime: lost.record.keys.smime!.fingerprint,
    since: started.toISOString(),
    effective: new Date(started.getTime() + HOLD_MS).toISOString(),
  });
  const shown = await lookup('lost.test');
  t.equal(shown.keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint, 'the held key is still served');
  t.same(shown.pendingRecovery, a.json.pendingRecovery, 'lookups show the pending change');
  t.ok(shown.serial > held.serial, 'with a new serial (sync and mirrors see it)');
  t.equal(shown.signed?.payload, held.signed?.payload, 'the held signed record unchanged');
  t.ok(await dir.store.kvGet('recovery:lost.test'), 'the pending record is kept');

  // Posting again during the hold-down restarts nothing.
  clock.advance(HOLD_MS / 2);
  const again = await post('/v1/domains', await resigned(lost));
  t.equal(again.status, 202);
  t.same(again.json.pendingRecovery, a.json.pendingRecovery, 'same since, same effective');
  // The periodic pass leaves it pending; the held record, whose TXT names the new key now, is marked stale (kept, served).
  t.same((await joins.reverify()).filter((o) => o.domain === 'lost.test').map((o) => o.status), ['stale'], 'the periodic pass: no recovery yet');
  t.equal((await lookup('lost.test')).keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint, 'still the held key');
  t.equal((await lookup('lost.test')).pendingRecovery?.effective, a.json.pendingRecovery?.effective, 'still pending');
  clock.advance(HOLD_MS / 2 - 1000);
  t.equal((await post('/v1/domains', await resigned(lost))).status, 202, 'one second before the end: still pending');

  clock.advance(1000);
  const done = await post('/v1/domains', await resigned(lost));
  t.equal(done.status, 201, 'the hold-down has passed: stored');
  t.equal(done.json.keys.openpgp?.fingerprint, lost.record.keys.openpgp!.fingerprint);
  t.match(done.json.provenance.verified, 'recovered after a hold-down of 72 h');
  t.match(done.json.provenance.verified, `replacing ${old.record.keys.openpgp!.fingerprint}`);
  t.match(done.json.provenance.verified, /proof _mailmesh TXT pins pgp=/);
  t.notOk(done.json.pendingRecovery, 'pendingRecovery cleared');
  t.equal(await dir.store.kvGet('recovery:lost.test'), undefined);
  t.same((await lookup('lost.test')).keys.openpgp?.fingerprint, lost.record.keys.openpgp!.fingerprint, 'lookups serve the new key');
});

t.test('the periodic pass promotes a due recovery, and checks the proof again', async (t) => {
  const quiet = await joinedThenLost('quiet.test');
  zone.pin(quiet.lost.record, base);
  t.equal((await post('/v1/domains', quiet.lost.record.signed)).status, 202);
  const gone = await joinedThenLost('gone.test');
  zone.pin(gone.lost.record, base);
  t.equal((await post('/v1/domains', gone.lost.record.signed)).status, 202);
  // gone.test's proof disappears before the hold-down ends: the DNS names the old key again.
  zone.pin(gone.old.record, base);
  clock.advance(HOLD_MS);
  const out = await joins.reverify();
  t.same(out.find((o) => o.domain === 'quiet.test')?.status, 'recovered');
  t.same(out.find((o) => o.domain === 'gone.test')?.status, 'recovery-dropped');
  t.match(out.find((o) => o.domain === 'gone.test')?.reason, /PIN_MISMATCH/);
  const q = await lookup('quiet.test');
  t.equal(q.keys.openpgp?.fingerprint, quiet.lost.record.keys.openpgp!.fingerprint, 'recovered without another post');
  t.match(q.provenance.verified, 'recovered after a hold-down of 72 h');
  t.notOk(q.pendingRecovery);
  const g = await lookup('gone.test');
  t.equal(g.keys.openpgp?.fingerprint, gone.old.record.keys.openpgp!.fingerprint, 'no proof at promotion: the held key stays');
  t.notOk(g.pendingRecovery, 'and nothing is pending any more');
  t.equal(await dir.store.kvGet('recovery:gone.test'), undefined);
});

t.test('a veto by the held key drops the recovery; that key is refused from then on', async (t) => {
  const { old, lost } = await joinedThenLost('vetoed.test');
  zone.pin(lost.record, base);
  t.equal((await post('/v1/domains', lost.record.signed)).status, 202);
  const newFpr = lost.record.keys.openpgp!.fingerprint;

  // Signed by another key than the held one: refused, the recovery stays.
  const stranger = await generateOpenPgpKey('vetoed.test' as never, { algorithm: 'curve25519', now: clock.now(), validDays: 30 });
  await rejectsCode(t, postVeto(base, 'vetoed.test', newFpr, stranger.privateArmored, clock.now()), 'SIGNATURE_INVALID');
  // Signed by the new key itself: no veto either.
  await rejectsCode(t, postVeto(base, 'vetoed.test', newFpr, lost.priv, clock.now()), 'SIGNATURE_INVALID');
  t.equal((await lookup('vetoed.test')).pendingRecovery?.openpgp, newFpr, 'still pending');
  // A veto of another key than the pending one: nothing to veto.
  await rejectsCode(t, postVeto(base, 'vetoed.test', old.record.keys.openpgp!.fingerprint, old.priv, clock.now()), 'NOT_FOUND');

  const vetoed = await postVeto(base, 'vetoed.test', newFpr, old.priv, clock.now());
  t.equal(vetoed.keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint, 'the held record');
  t.notOk(vetoed.pendingRecovery, 'pendingRecovery cleared');
  t.notOk((await lookup('vetoed.test')).pendingRecovery);
  t.equal(await dir.store.kvGet('recovery:vetoed.test'), undefined, 'the pending record is dropped');

  clock.advance(1000);
  const refused = await post('/v1/domains', await resigned(lost));
  t.equal(refused.status, 403);
  t.equal(refused.json.error?.code, 'RECOVERY_VETOED');
  t.match(refused.json.error?.message, newFpr);
  clock.advance(HOLD_MS);
  await rejectsCode(t, postJoin(base, await resigned(lost)), 'RECOVERY_VETOED', 'after the hold-down as well');
  t.notOk((await joins.reverify()).some((o) => o.domain === 'vetoed.test' && o.status === 'recovered'), 'the periodic pass recovers nothing');
  t.equal((await lookup('vetoed.test')).keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint, 'the held key stays');

  // The statement has its own type: a leave-shaped statement is no veto.
  const leaveShaped = await signPayload({ v: 1, type: 'mailmesh.leave', domain: 'vetoed.test', fingerprint: newFpr, issued: clock.now().toISOString() }, [old.priv], clock.now());
  t.equal((await post('/v1/domains/vetoed.test/veto', leaveShaped)).json.error?.code, 'SIGNED_RECORD_MALFORMED');
  t.equal(VETO_TYPE, 'mailmesh.veto');
});

t.test('another key with proof while one is pending: the hold-down starts again for it', async (t) => {
  const { lost } = await joinedThenLost('twice.test');
  zone.pin(lost.record, base);
  const first = await post('/v1/domains', lost.record.signed);
  clock.advance(HOLD_MS - 1000);
  const third = await member('twice.test');
  zone.pin(third.record, base);
  const second = await post('/v1/domains', third.record.signed);
  t.equal(second.status, 202);
  t.equal(second.json.pendingRecovery?.openpgp, third.record.keys.openpgp!.fingerprint);
  t.ok(Date.parse(second.json.pendingRecovery!.since) > Date.parse(first.json.pendingRecovery!.since), 'since now');
  clock.advance(1000);
  t.notOk((await joins.reverify()).some((o) => o.domain === 'twice.test' && o.status === 'recovered'), 'the first key\'s end of hold-down changes nothing');
  t.equal((await lookup('twice.test')).pendingRecovery?.openpgp, third.record.keys.openpgp!.fingerprint, 'the second key still pending');
});

t.test('a recovery counts only while the held record shows it: after a leave and a new join it starts again', async (t) => {
  const { old, lost } = await joinedThenLost('left.test');
  zone.pin(lost.record, base);
  t.equal((await post('/v1/domains', lost.record.signed)).status, 202);
  // The holder leaves; another key joins the domain afresh (its TXT), then the lost key's TXT is back.
  await postLeave(base, 'left.test', old.record.keys.openpgp!.fingerprint, old.priv, clock.now());
  clock.advance(HOLD_MS);
  const fresh = await member('left.test');
  zone.pin(fresh.record, base);
  await postJoin(base, fresh.record.signed!);
  zone.pin(lost.record, base);
  const again = await post('/v1/domains', await resigned(lost));
  t.equal(again.status, 202, 'held down against the new holder, not promoted at once');
  t.equal(again.json.keys.openpgp?.fingerprint, fresh.record.keys.openpgp!.fingerprint);
  t.equal(again.json.pendingRecovery?.since, clock.now().toISOString(), 'a hold-down from now');
});

t.test('a mirror shows the origin\'s pending recovery and takes no key change on its word', async (t) => {
  const { old, lost } = await joinedThenLost('mirrored.test');
  const copy = await memoryDirectory(clock.now);
  const mirror = new Mirror(base, { directory: copy });
  await mirror.sync();
  t.equal((await copy.getRecord('mirrored.test')).keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint);
  zone.pin(lost.record, base);
  const a = await post('/v1/domains', lost.record.signed);
  t.equal(a.status, 202);
  t.ok((await mirror.sync()).stored.includes('mirrored.test'));
  t.same((await copy.getRecord('mirrored.test')).pendingRecovery, a.json.pendingRecovery, 'the mirror shows it');
  clock.advance(HOLD_MS);
  t.equal((await post('/v1/domains', await resigned(lost))).status, 201, 'recovered at the origin');
  const r = await mirror.sync();
  t.same(r.refused.map((x) => [x.domain, x.code]), [['mirrored.test', 'PIN_VIOLATION']], 'the mirror refuses the key change');
  t.equal((await copy.getRecord('mirrored.test')).keys.openpgp?.fingerprint, old.record.keys.openpgp!.fingerprint);
});
