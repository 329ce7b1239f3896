import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import t from 'tap';
import { openPgpKeyOwner, smimeaOwner } from '../../../directory/dane.js';
import { exportZone } from '../../../directory/dns/dns.js';
import { domainKeyAddress, parseDomain } from '../../../directory/domain.js';
import type { DomainRecord } from '../../../directory/record.js';
import { pemToDer } from '../../../directory/smime.js';
import { parsePin } from '../../../federation/pin.js';
import { announceForTest } from '../announced.js';
import { kdig, memoryDirectory, rdataOf, startDns, ZONE, zoneOptions } from './helpers.js';

// A domain in a roll (docs/lifecycle.md "Roll") on the DNS face, read with kdig: the next keys'
// OPENPGPKEY and SMIMEA beside the current ones in the federation zone, the TXT pin there naming
// the current keys; in the domain's own zone a second `_mailmesh` TXT naming the next keys.
const directory = await memoryDirectory();
const D = 'rolling.example';
await directory.addDomain(D);
const { record } = await announceForTest(directory, D);
const name = `${D}.${ZONE}`;
const { port, server } = await startDns(t, directory, { authoritativeFor: [D] });

/** The fingerprints of the OPENPGPKEY answers (RFC 7929 §2.3: base64 in presentation form). */
const openPgpFingerprints = async (answers: string[]) =>
  Promise.all(answers.map(async (l) => (await openpgp.readKey({ binaryKey: Buffer.from(rdataOf(l), 'base64') })).getFingerprint().toUpperCase()));
/** The SHA-256 of the certificates in SMIMEA `3 0 0 <hex DER>` answers (RFC 6698 §2.2), as the pin names them. */
const smimeaFingerprints = (answers: string[]) =>
  answers.map((l) => {
    const [usage, selector, matching, ...hex] = rdataOf(l).split(' ');
    if (`${usage} ${selector} ${matching}` !== '3 0 0') throw new Error(`not 3 0 0: ${l}`);
    return createHash('sha256').update(Buffer.from(hex.join(''), 'hex')).digest('hex');
  });
const pinsOf = (answers: string[]) => answers.map((l) => parsePin(rdataOf(l).replace(/^"|"$/g, '').replace(/" "/g, ''))!);
const both = (k: (keys: DomainRecord['keys']) => string) => [k(record.keys), k(record.next!)].sort();

t.test('federation zone: OPENPGPKEY and SMIMEA of both key sets, the TXT pin names the current ones', async (t) => {
  const pgp = await kdig(port, [name, 'TYPE61', '+tcp']);
  t.equal(pgp.answers.length, 2, 'two OPENPGPKEY RRs');
  t.same((await openPgpFingerprints(pgp.answers)).sort(), both((k) => k.openpgp!.fingerprint));
  const smimea = await kdig(port, [name, 'SMIMEA', '+tcp']);
  t.equal(smimea.answers.length, 2, 'two SMIMEA RRs');
  t.same(smimeaFingerprints(smimea.answers).sort(), both((k) => k.smime!.fingerprint));
  t.ok(smimeaFingerprints(smimea.answers).includes(createHash('sha256').update(pemToDer(record.next!.smime!.chain[0]!)).digest('hex')), 'the next leaf, as DER');

  const txt = await kdig(port, [name, 'TXT']);
  t.equal(txt.answers.length, 1, 'one TXT pin');
  const [pin] = pinsOf(txt.answers);
  t.equal(pin!.pgp, record.keys.openpgp!.fingerprint, 'it names the current OpenPGP key');
  t.equal(pin!.smime, record.keys.smime!.fingerprint, 'and the current certificate');

  const exported = await exportZone(directory, zoneOptions({ authoritativeFor: [D] }));
  t.equal(exported.split('\n').filter((l) => l.startsWith(`${name}.`) && /\sOPENPGPKEY\s/.test(l)).length, 2, 'zone export: both OPENPGPKEY RRs');
});

t.test('own zone: a second _mailmesh TXT names the next keys; the RFC 7929/8162 names keep the current keys', async (t) => {
  const txt = await kdig(port, [`_mailmesh.${D}`, 'TXT']);
  t.equal(txt.answers.length, 2, 'two TXT RRs');
  const pins = pinsOf(txt.answers);
  t.same(pins.map((p) => p.pgp).sort(), both((k) => k.openpgp!.fingerprint));
  t.same(pins.map((p) => p.smime).sort(), both((k) => k.smime!.fingerprint), 'each TXT names one set, whole');
  t.ok(pins.every((p) => p.dir), 'each with dir=');

  const addr = domainKeyAddress(parseDomain(D));
  const pgp = await kdig(port, [openPgpKeyOwner(addr), 'TYPE61', '+tcp']);
  t.same(await openPgpFingerprints(pgp.answers), [record.keys.openpgp!.fingerprint]);
  const smimea = await kdig(port, [smimeaOwner(addr), 'SMIMEA', '+tcp']);
  t.same(smimeaFingerprints(smimea.answers), [record.keys.smime!.fingerprint]);

  const exported = await exportZone(directory, zoneOptions({ authoritativeFor: [D] }), D);
  t.equal(exported.split('\n').filter((l) => l.startsWith(`_mailmesh.${D}.`) && /\sTXT\s/.test(l)).length, 2, 'zone export for the member\'s DNS operator: both TXT');
});

t.test('when the roll is over (no next), one of each again', async (t) => {
  const { serial, next: _next, rollover: _rollover, ...rest } = await directory.getRecord(D);
  await directory.putRecord(rest, serial);
  await server.settled();
  t.equal((await kdig(port, [name, 'TYPE61', '+tcp'])).answers.length, 1);
  t.equal((await kdig(port, [name, 'SMIMEA', '+tcp'])).answers.length, 1);
  t.equal((await kdig(port, [`_mailmesh.${D}`, 'TXT'])).answers.length, 1);
});
