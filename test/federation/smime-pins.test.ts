import t from 'tap';
import { openPgpKeyOwner, smimeaData, smimeaOwner } from '../../directory/dane.js';
import { domainKeyAddress, parseDomain } from '../../directory/domain.js';
import { TYPE } from '../../directory/dnswire.js';
import type { DomainRecord, SmimeKeyInfo } from '../../directory/record.js';
import { payloadKeys, recordPayload, signPayload } from '../../directory/signed.js';
import { generateSmime, smimeKeyInfo } from '../../directory/smime.js';
import { stubResolver } from '../../federation/dns.js';
import { Discovery } from '../../federation/discovery.js';
import { MemoryPinStore, smimeCaPin } from '../../federation/pins.js';
import { baseFor } from '../../federation/web.js';
import { memoryDirectory, publishOpenPgpKey, startWellKnown, startZone } from './helpers.js';

// A peer's S/MIME certificate is pinned like its OpenPGP key: the domain's own DNS (TXT pin,
// OPENPGPKEY, SMIMEA in a test zone) and its signed well-known record on a loopback web server.
const zone = await startZone(t);
const { records: wellKnown, base: webBase } = await startWellKnown(t);
const sources = {
  resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }),
  wellKnownBase: baseFor(webBase),
  clock: () => new Date(),
  timeoutMs: 2000,
};

/** A member domain with its keys in its own DNS; `publish` puts another S/MIME key in its SMIMEA and TXT pin. */
async function member(name: string) {
  const local = await memoryDirectory();
  const record = await local.addDomain(name);
  const owner = domainKeyAddress(parseDomain(name));
  const publish = async (smime: SmimeKeyInfo) => {
    await publishOpenPgpKey(zone, openPgpKeyOwner(owner), record);
    const d = smimeaData(smime.chain[0]!);
    zone.set(smimeaOwner(owner), TYPE.SMIMEA, [Buffer.concat([Buffer.from([d.usage, d.selector, d.matchingType]), d.data])]);
    zone.pin({ ...record, keys: { ...record.keys, smime } });
  };
  await publish(record.keys.smime!);
  /** The domain's DNS without its keys (the TXT pin names `keys`): the signed well-known record is the source. */
  const onlyWellKnown = (keys: DomainRecord['keys']) => {
    zone.delete(openPgpKeyOwner(owner), TYPE.OPENPGPKEY);
    zone.delete(smimeaOwner(owner), TYPE.SMIMEA);
    zone.pin({ ...record, keys });
  };
  const priv = (await local.getSecrets(name)).openpgp!.armored;
  const signed = (keys: DomainRecord['keys'], extra: Parameters<typeof recordPayload>[2] = {}) => signPayload(recordPayload({ ...record, keys }, new Date(), extra), [priv], new Date());
  const otherSmime = async () => {
    const g = await generateSmime(parseDomain(name), { now: new Date(), validDays: 30 });
    return smimeKeyInfo([g.leaf, g.ca]);
  };
  return { record, publish, onlyWellKnown, signed, otherSmime };
}

function resolver(pins = new MemoryPinStore()) {
  return { pins, discovery: new Discovery({ sources, directories: [], pins, cacheTtlMs: 0 }) };
}

t.test('same OpenPGP key, another certificate in SMIMEA and TXT pin: a violation, the old certificate kept', async (t) => {
  const m = await member('smime-swap.test');
  const { pins, discovery } = resolver();
  const first = await discovery.discover('smime-swap.test');
  t.equal(first.keys.smime?.fingerprint, m.record.keys.smime!.fingerprint, 'first sighting pinned');
  const rogue = await m.otherSmime();
  await m.publish(rogue);
  const second = await discovery.discover('smime-swap.test');
  t.equal(second.keys.openpgp?.fingerprint, m.record.keys.openpgp!.fingerprint);
  t.equal(second.keys.smime?.fingerprint, m.record.keys.smime!.fingerprint, 'the pinned certificate stays in use');
  t.equal(second.provenance.source, 'pinned');
  t.equal(second.violation?.key, 'smime');
  t.equal(second.violation?.offered, `S/MIME ${rogue.fingerprint}`);
  const pin = await pins.get('smime-swap.test');
  t.equal(pin?.keys.smime?.fingerprint, m.record.keys.smime!.fingerprint, 'the pin is not moved');
  t.equal(pin?.violations.length, 1, 'kept for doctor');
});

t.test('an S/MIME key announced as next by a signed record is followed; so is one in a signed record', async (t) => {
  const m = await member('smime-roll.test');
  const { pins, discovery } = resolver();
  await discovery.discover('smime-roll.test');
  const next = await m.otherSmime();
  // The domain's signed well-known record announces the next certificate; its DNS still has the current one.
  wellKnown.set('smime-roll.test', await m.signed(m.record.keys, { next: payloadKeys({ smime: next }) }));
  m.onlyWellKnown({ openpgp: m.record.keys.openpgp });
  const viaRecord = await discovery.discover('smime-roll.test');
  t.equal(viaRecord.provenance.source, 'domain-https');
  t.equal((await pins.get('smime-roll.test'))?.nextSmime, next.fingerprint, 'the announcement is remembered');
  // Then it switches in DNS alone (unsigned): announced, so followed without an alarm.
  await m.publish(next);
  const switched = await discovery.discover('smime-roll.test');
  t.equal(switched.provenance.source, 'domain-dns');
  t.equal(switched.keys.smime?.fingerprint, next.fingerprint, 'the announced certificate');
  t.notOk(switched.violation);
  // A certificate never announced but carried by a record signed by the pinned OpenPGP key.
  const third = await m.otherSmime();
  m.onlyWellKnown({ openpgp: m.record.keys.openpgp, smime: third });
  wellKnown.set('smime-roll.test', await m.signed({ ...m.record.keys, smime: third }));
  const signed = await discovery.discover('smime-roll.test');
  t.equal(signed.keys.smime?.fingerprint, third.fingerprint, 'signed by the pinned key: accepted');
  t.notOk(signed.violation);
  t.equal((await pins.get('smime-roll.test'))?.keys.smime?.fingerprint, third.fingerprint, 'the pin moved');
  t.equal(smimeCaPin((await pins.get('smime-roll.test'))?.keys.smime), smimeCaPin(third), 'with its domain CA');
});

t.test('a pin from before S/MIME was pinned keeps working: the first S/MIME key seen is pinned, and cannot be dropped and swapped', async (t) => {
  const m = await member('smime-old.test');
  const { pins, discovery } = resolver();
  await pins.put('smime-old.test', { keys: { openpgp: m.record.keys.openpgp }, at: new Date().toISOString(), violations: [] });
  const r = await discovery.discover('smime-old.test');
  t.notOk(r.violation);
  t.equal((await pins.get('smime-old.test'))?.keys.smime?.fingerprint, m.record.keys.smime!.fingerprint, 'first S/MIME sighting pinned');
  // The SMIMEA disappears (an answer with the OpenPGP key only): accepted, the pin keeps the certificate.
  zone.delete(smimeaOwner(domainKeyAddress(parseDomain('smime-old.test'))), TYPE.SMIMEA);
  zone.pin({ ...m.record, keys: { openpgp: m.record.keys.openpgp } });
  t.notOk((await discovery.discover('smime-old.test')).violation);
  t.equal((await pins.get('smime-old.test'))?.keys.smime?.fingerprint, m.record.keys.smime!.fingerprint, 'the certificate stays pinned');
  // ... so another one showing up later is a change, not a first sighting.
  const rogue = await m.otherSmime();
  await m.publish(rogue);
  const swapped = await discovery.discover('smime-old.test');
  t.equal(swapped.violation?.key, 'smime');
  t.equal(swapped.keys.smime?.fingerprint, m.record.keys.smime!.fingerprint);
});
