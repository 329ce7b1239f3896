import t from 'tap';
import { openPgpKeyData, openPgpKeyOwner, pinText, smimeaData, smimeaOwner } from '../../directory/dane.js';
import { domainKeyAddress, parseDomain } from '../../directory/domain.js';
import { TYPE } from '../../directory/dnswire.js';
import { generateDomainKeys } from '../../directory/keys.js';
import type { DomainRecord } from '../../directory/record.js';
import { stubResolver } from '../../federation/dns.js';
import { Discovery, type DirectoryRef } from '../../federation/discovery.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { baseFor } from '../../federation/web.js';
import { memoryDirectory, startWellKnown, startZone } from './helpers.js';

// During a roll a directory's DNS face publishes the next keys' OPENPGPKEY and SMIMEA beside the
// current ones, and the TXT pin names the current ones (docs/dns.md). DNS gives an RRset in no
// particular order: discovery must take the RRs the pin names, whichever comes first, so that
// next keys in DNS never become current. A test zone serves the RRs in both orders.
const zone = await startZone(t);
const { base: webBase } = await startWellKnown(t);
const sources = {
  resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }),
  wellKnownBase: baseFor(webBase),
  clock: () => new Date(),
  timeoutMs: 2000,
};
const ZONE = 'dir.example';

const D = 'rolling.test';
const record = await (await memoryDirectory()).addDomain(D);
const { keys: next } = await generateDomainKeys(parseDomain(D), { openpgp: 'curve25519', validDays: 365 }, new Date());
const smimeaRdata = (keys: DomainRecord['keys']) => {
  const d = smimeaData(keys.smime!.chain[0]!);
  return Buffer.concat([Buffer.from([d.usage, d.selector, d.matchingType]), d.data]);
};
const rdatas = {
  pgp: [await openPgpKeyData(record.keys.openpgp!.armored), await openPgpKeyData(next.openpgp!.armored)],
  smime: [smimeaRdata(record.keys), smimeaRdata(next)],
};
const orders: [string, (xs: Buffer[]) => Buffer[]][] = [['current first', (xs) => xs], ['next first', (xs) => [...xs].reverse()]];

/** Discovery with a fresh pin store, no cache; the directory's HTTPS face is the web server, which knows no records. */
const discovery = (directories: DirectoryRef[] = []) => new Discovery({ sources, directories, pins: new MemoryPinStore(), cacheTtlMs: 0 });

t.test("the domain's own DNS: the OPENPGPKEY and SMIMEA its _mailmesh pin names", async (t) => {
  const owner = domainKeyAddress(parseDomain(D));
  zone.pin(record);
  t.teardown(() => zone.delete(`_mailmesh.${D}`));
  for (const [label, order] of orders) {
    zone.set(openPgpKeyOwner(owner), TYPE.OPENPGPKEY, order(rdatas.pgp));
    zone.set(smimeaOwner(owner), TYPE.SMIMEA, order(rdatas.smime));
    const found = await discovery().discover(D);
    t.equal(found.provenance.source, 'domain-dns', label);
    t.equal(found.keys.openpgp?.fingerprint, record.keys.openpgp!.fingerprint, `${label}: the current OpenPGP key`);
    t.equal(found.keys.smime?.fingerprint, record.keys.smime!.fingerprint, `${label}: the current certificate`);
    t.equal(found.violation, undefined);
  }
  zone.delete(openPgpKeyOwner(owner));
  zone.delete(smimeaOwner(owner));
});

t.test("a directory's zone: the RRs its TXT pin names", async (t) => {
  const owner = `${D}.${ZONE}`;
  // The domain's own DNS says nothing (no _mailmesh pin): the directory's zone answers.
  zone.setTxt(owner, pinText(record, webBase));
  const dir = { url: webBase.replace('/{domain}', ''), zone: ZONE, nameservers: [`127.0.0.1:${zone.port}`] };
  for (const [label, order] of orders) {
    zone.set(owner, TYPE.OPENPGPKEY, order(rdatas.pgp));
    zone.set(owner, TYPE.SMIMEA, order(rdatas.smime));
    const found = await discovery([dir]).discover(D);
    t.equal(found.provenance.source, 'directory-dns', label);
    t.equal(found.keys.openpgp?.fingerprint, record.keys.openpgp!.fingerprint, `${label}: the current OpenPGP key`);
    t.equal(found.keys.smime?.fingerprint, record.keys.smime!.fingerprint, `${label}: the current certificate`);
  }
  // A pin naming neither key: the first RR is offered, and refused by the pin check as before.
  zone.set(owner, TYPE.OPENPGPKEY, [rdatas.pgp[1]!]);
  zone.set(owner, TYPE.SMIMEA, [rdatas.smime[1]!]);
  const none = await discovery([dir]).discover(D);
  t.equal(none.provenance.source, 'none', 'keys the pin does not name are not taken');
});
