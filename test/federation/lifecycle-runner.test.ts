import t, { type Test } from 'tap';
import { PIN_LABEL, pinText } from '../../directory/dane.js';
import { txtRdata, TYPE } from '../../directory/dnswire.js';
import { Metrics } from '../../directory/metrics.js';
import type { DomainRecord } from '../../directory/record.js';
import { stubResolver } from '../../federation/dns.js';
import { JoinService, postJoin } from '../../federation/join.js';
import { KeyLifecycle, keyExpiries, watchKeyExpiry, type LifecycleEvent } from '../../federation/lifecycle.js';
import { baseFor } from '../../federation/web.js';
import { startHttp } from '../directory/http/helpers.js';
import { memoryDirectory, startZone, testClock } from './helpers.js';

const DAY = 86_400_000;

/**
 * A member (its own store, on the test clock), its DNS (the test zone with its `_mailmesh` pin), and
 * one directory it joined (HTTP face with joins, on the same clock): what serve's KeyLifecycle
 * works with. The directory's pins are checked at join, so every post proves the TXT.
 */
async function setup(t: Test, o: { autoRoll: boolean }) {
  const clock = testClock(new Date('2027-01-04T00:00:00.000Z'));
  const zone = await startZone(t);
  const sources = { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }), wellKnownBase: baseFor('http://127.0.0.1:1/{domain}'), clock: clock.now, timeoutMs: 2000 };
  const dir = await memoryDirectory(clock.now);
  const { base: url } = await startHttp(t, dir, undefined, { federation: new JoinService({ directory: dir, sources, allowPrivateAddresses: true }) });
  const member = await memoryDirectory(clock.now);
  const first = await member.addDomain('alpha.test');
  const pin = (...keys: DomainRecord['keys'][]) => zone.set(`${PIN_LABEL}.alpha.test`, TYPE.TXT, keys.map((k) => txtRdata(pinText({ ...first, keys: k }, url))));
  pin(first.keys);
  await postJoin(url, first.signed!);
  const metrics = new Metrics();
  const lifecycle = new KeyLifecycle({ directory: member, keys: { overlapDays: 7, autoRoll: o.autoRoll, renewBeforeDays: 30 }, directories: [{ url }], sources, metrics });
  const held = async () => (await dir.getRecord('alpha.test')).keys;
  return { clock, member, first, pin, lifecycle, held, metrics };
}

t.test('730 days unattended with keys.autoRoll: announce, wait for the TXT, finish, retain then erase, the directory follows; no key ever expires', async (t) => {
  const { clock, member, pin, lifecycle, held, first, metrics } = await setup(t, { autoRoll: true });
  const unwatch = await watchKeyExpiry(member, metrics);
  t.teardown(unwatch);
  const log: (LifecycleEvent & { day: number })[] = [];
  let retainedSeen = 0;
  for (let day = 0; day <= 730; day++) {
    const events = await lifecycle.tick();
    log.push(...events.map((e) => ({ ...e, day })));
    const r = await member.getRecord('alpha.test');
    // The operator: publishes the next key's TXT once serve waits for it, and drops the old one after the switch.
    if (events.some((e) => e.action === 'waiting')) pin(r.keys, r.next!);
    if (events.some((e) => e.action === 'finished')) pin(r.keys);
    const e = keyExpiries(r.keys);
    for (const kind of ['openpgp', 'smime', 'smime-ca'] as const) {
      if (e[kind]!.getTime() <= clock.now().getTime()) t.fail(`day ${day}: the ${kind} key expired on ${e[kind]!.toISOString()}`);
    }
    retainedSeen = Math.max(retainedSeen, (await member.getSecrets('alpha.test')).retained?.length ?? 0);
    clock.advance(DAY);
  }
  const by = (a: LifecycleEvent['action']) => log.filter((e) => e.action === a);
  t.ok(by('announced').length >= 2, `rolls announced on days ${by('announced').map((e) => e.day).join(', ')}`);
  t.equal(by('finished').length, by('announced').length, 'every roll finished');
  t.ok(by('waiting').every((e) => /ROLL_PROOF_MISSING/.test(e.detail ?? '')), 'the switch waited for the TXT');
  for (const a of by('announced')) {
    const w = by('waiting').find((e) => e.day > a.day);
    const f = by('finished').find((e) => e.day > a.day)!;
    t.ok(w && w.day === a.day + 7 && f.day === a.day + 8, `announced day ${a.day}, waited for the TXT on day ${w?.day}, finished day ${f.day}`);
  }
  t.ok(retainedSeen >= 1, 'replaced keys were retained');
  t.ok(by('pruned').length >= 1, `retained keys erased on days ${by('pruned').map((e) => e.day).join(', ')}`);
  t.same(by('failed'), [], 'nothing failed');
  const now = await member.getRecord('alpha.test');
  t.not(now.keys.openpgp!.fingerprint, first.keys.openpgp!.fingerprint);
  t.equal((await held()).openpgp!.fingerprint, now.keys.openpgp!.fingerprint, 'the directory serves the current key');
  t.equal(by('posted').length, by('announced').length + by('finished').length, 'each new record posted once (acknowledged records are not posted again)');
  t.match(await metrics.render(), `mailmesh_key_not_after_timestamp_seconds{domain="alpha.test",kind="openpgp"} ${Math.floor(Date.parse(now.keys.openpgp!.expires!) / 1000)}`);
});

t.test('without autoRoll: the S/MIME leaf is renewed once, renewBeforeDays before it expires, and the directory takes it with the TXT unchanged', async (t) => {
  const { clock, member, lifecycle, held, first } = await setup(t, { autoRoll: false });
  const leafEnd = Date.parse(first.keys.smime!.notAfter);
  const log: (LifecycleEvent & { day: number })[] = [];
  for (let day = 0; clock.now().getTime() < leafEnd - DAY; day++) {
    const events = await lifecycle.tick();
    log.push(...events.map((e) => ({ ...e, day })));
    clock.advance(DAY);
  }
  const renewed = log.filter((e) => e.action === 'renewed');
  t.equal(renewed.length, 1, 'renewed once');
  t.equal(renewed[0]!.day, Math.ceil((leafEnd - 30 * DAY - Date.parse('2027-01-04T00:00:00.000Z')) / DAY), 'on the first day within renewBeforeDays');
  // The TXT still names the old leaf: its pgp= names the key that signs the renewed record (federation/pin.ts pinProves).
  t.ok(log.some((e) => e.action === 'posted' && e.day === renewed[0]!.day), 'the directory took it the same day, the TXT unchanged');
  t.same(log.filter((e) => e.action === 'failed'), [], 'no post failed');
  const r = await member.getRecord('alpha.test');
  t.ok(Date.parse(r.keys.smime!.notAfter) > leafEnd + 30 * DAY, 'the new leaf outlives the old one');
  t.equal(r.keys.openpgp!.fingerprint, first.keys.openpgp!.fingerprint, 'no roll');
  t.equal((await held()).smime!.fingerprint, r.keys.smime!.fingerprint);
  t.same(log.filter((e) => e.action === 'announced'), [], 'nothing announced');
});
