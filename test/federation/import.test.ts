import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LdapServer } from '../../directory/ldap/ldap.js';
import { importHandler, importThirdParty, readMaterial } from '../../federation/importer.js';
import { importFromLdap } from '../../federation/ldapimport.js';
import { announceForTest } from '../directory/announced.js';
import { get, isUnauthorized, startHttp } from '../directory/http/helpers.js';
import { gpgHome, rejectsCode, run, seeded, tempDir } from '../helpers.js';
import { memoryDirectory, testClock } from './helpers.js';
import { isMailmeshError } from '../../directory/errors.js';

const dir = tempDir(t);
const f = (name: string) => join(dir, name);
const openssl = (args: string[]) => run('openssl', args, { cwd: dir });

/** An openssl-made CA and a leaf for domainkey@<domain> (SAN, EKU emailProtection, KU as docs/architecture.md says). */
async function makeCa(name: string) {
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '30', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}
async function makeLeaf(ca: string, domain: string, name: string) {
  writeFileSync(f(`${name}.ext`), `subjectAltName=email:domainkey@${domain},DNS:${domain}\nextendedKeyUsage=emailProtection\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n`);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${domain} domain key`]);
  await openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.pem`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-days', '10', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)]);
}

await makeCa('partnerca');
await makeLeaf('partnerca', 'partner.test', 'leaf');
await makeCa('otherca');
await makeLeaf('otherca', 'partner.test', 'rogue');
const anchors = [readFileSync(f('partnerca.pem'), 'utf8')];
writeFileSync(f('chain.pem'), readFileSync(f('leaf.pem'), 'utf8') + readFileSync(f('partnerca.pem'), 'utf8'));
await openssl(['crl2pkcs7', '-nocrl', '-certfile', f('chain.pem'), '-outform', 'DER', '-out', f('chain.p7b')]);
await openssl(['x509', '-in', f('leaf.pem'), '-outform', 'DER', '-out', f('leaf.der')]);

t.test('a gpg-made key imports; a key for another domain is refused', async (t) => {
  const { gpg } = gpgHome(t);
  await gpg(['--quick-gen-key', 'Partner domain key <domainkey@partner.test>', 'ed25519', 'sign', '1y']);
  const fpr = /fpr:+([0-9A-F]{40}):/.exec((await gpg(['--with-colons', '--fingerprint', 'domainkey@partner.test'])).stdout.toString())![1]!;
  await gpg(['--quick-add-key', fpr, 'cv25519', 'encr', '1y']);
  const key = (await gpg(['--armor', '--export', 'domainkey@partner.test'])).stdout;
  const d = await memoryDirectory();
  const r = await importThirdParty(d, 'partner.test', key, { trustAnchors: [], publish: false, origin: 'partner.asc' });
  t.equal(r.keys.openpgp?.fingerprint, fpr);
  t.equal(r.provenance.source, 'imported');
  t.equal(r.publish, false);
  t.equal(await d.findRecord('partner.test'), undefined, 'not published');
  t.ok(await d.findRecord('partner.test', { unpublished: true }), 'kept for own use');
  t.same((await d.listDomains()).map((x) => x.domain), [], 'not listed');
  t.equal((await d.changesSince(0, 10)).records[0]?.status, 'deleted', 'mirrors see nothing but a tombstone');
  const binary = (await gpg(['--export', 'domainkey@partner.test'])).stdout;
  t.equal((await importThirdParty(d, 'partner.test', binary, { trustAnchors: [], publish: true, origin: 'partner.gpg' })).publish, true, 'binary export too, published on request');
  t.ok(await d.findRecord('partner.test'), 'published now');
  await rejectsCode(t, importThirdParty(d, 'elsewhere.test', key, { trustAnchors: [], publish: false, origin: 'x' }), 'KEY_WRONG_DOMAIN');
});

t.test('an openssl-made CA chain imports as PEM, DER and PKCS#7; bad ones are refused with codes', async (t) => {
  const d = await memoryDirectory();
  const o = { trustAnchors: anchors, publish: false, origin: 'chain.pem' };
  const r = await importThirdParty(d, 'partner.test', readFileSync(f('chain.pem')), o);
  t.equal(r.keys.smime?.chain.length, 2);
  t.match(r.provenance.verified, /chain to trust anchor partnerca/);
  t.equal((await importThirdParty(d, 'partner.test', readFileSync(f('chain.p7b')), o)).keys.smime?.fingerprint, r.keys.smime?.fingerprint, 'PKCS#7 certs-only');
  t.equal(readMaterial(readFileSync(f('chain.p7b'))).kind, 'certificates');
  t.equal((await importThirdParty(d, 'partner.test', readFileSync(f('leaf.der')), o)).keys.smime?.fingerprint, r.keys.smime?.fingerprint, 'one DER leaf');
  await rejectsCode(t, importThirdParty(d, 'partner.test', readFileSync(f('rogue.pem')), o), 'TRUST_ANCHOR_UNKNOWN', 'chain to an unknown CA');
  await rejectsCode(t, importThirdParty(d, 'partner.test', readFileSync(f('chain.pem')), { ...o, trustAnchors: [] }), 'TRUST_ANCHOR_UNKNOWN', 'no anchors');
  await rejectsCode(t, importThirdParty(d, 'other.test', readFileSync(f('chain.pem')), o), 'KEY_WRONG_DOMAIN');
  const later = testClock(new Date(Date.now() + 20 * 86400_000));
  const future = await memoryDirectory(later.now);
  await rejectsCode(t, importThirdParty(future, 'partner.test', readFileSync(f('chain.pem')), o), 'KEY_EXPIRED', 'expired certificate');
  await rejectsCode(t, importThirdParty(d, 'partner.test', Buffer.from('garbage'), o), 'KEY_UNREADABLE');
  // A local domain is not overwritten by an import.
  await d.addDomain('own.test');
  await rejectsCode(t, importThirdParty(d, 'own.test', readFileSync(f('chain.pem')), o), 'DOMAIN_HELD');
});

t.test('property: random bytes and mutated files are refused with a code, never a crash', async (t) => {
  const d = await memoryDirectory();
  const rnd = seeded(5652);
  const files = [readFileSync(f('chain.pem')), readFileSync(f('chain.p7b')), readFileSync(f('leaf.der'))];
  for (let i = 0; i < 40; i++) {
    const b = Buffer.from(files[i % files.length]!);
    for (let k = 0; k < 3; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    try {
      await importThirdParty(d, 'partner.test', b, { trustAnchors: anchors, publish: false, origin: 'fuzz' });
    } catch (e) {
      if (!isMailmeshError(e)) t.fail(`mutation ${i}: ${String(e)}`);
    }
  }
  t.pass('no crash');
});

t.test('POST /v1/imports needs the token', async (t) => {
  const d = await memoryDirectory();
  const importKeys = importHandler(d, { token: 's3cret', trustAnchors: anchors, publish: false });
  const { base } = await startHttp(t, d, undefined, { federation: { join: async () => { throw new Error('unused'); }, leave: async () => { throw new Error('unused'); }, importKeys } });
  const url = `${base}/v1/imports`;
  const body = JSON.stringify({ domain: 'partner.test', data: readFileSync(f('chain.p7b')).toString('base64'), encoding: 'base64' });
  // A missing or wrong token answers as on every bearer-token route (WebMail reset: test/gateway/webmail/admin.test.ts).
  isUnauthorized(t, await get(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }), 'no token');
  isUnauthorized(t, await get(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' }, body }), 'a wrong token');
  isUnauthorized(t, await get(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 's3cret' }, body }), 'the token without the Bearer scheme');
  t.equal((await d.listDomains()).length, 0, 'nothing imported');
  const ok = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret' }, body });
  t.equal(ok.status, 201);
  t.equal(((await ok.json()) as { provenance: { source: string } }).provenance.source, 'imported');
  const bad = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret' }, body: JSON.stringify({ domain: 'partner.test' }) });
  t.equal(bad.status, 400);

  // Without a configured token the operation is off: 403 FEDERATION_DISABLED, whatever is sent.
  const off = await startHttp(t, d, undefined, { federation: { join: async () => { throw new Error('unused'); }, leave: async () => { throw new Error('unused'); }, importKeys: importHandler(d, { trustAnchors: anchors, publish: false }) } });
  for (const authorization of [undefined, 'Bearer s3cret']) {
    const r = await get(`${off.base}/v1/imports`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization && { authorization }) }, body });
    t.equal(r.status, 403, `disabled, ${authorization ?? 'no token'}`);
    t.equal((r.json() as { error: { code: string } }).error.code, 'FEDERATION_DISABLED');
    t.equal(r.headers['www-authenticate'], undefined, 'no challenge: no token would help');
  }
});

t.test('LDAP import from a real LDAP server (our LDAP face)', async (t) => {
  const partner = await memoryDirectory();
  const rec = await partner.addDomain('ldap-partner.test');
  const server = await LdapServer.create({ directory: partner, base: 'dc=partner' });
  t.teardown(() => server.close());
  const { port } = await server.listen(0, '127.0.0.1');
  const d = await memoryDirectory();
  const caPem = rec.keys.smime!.chain[1]!;
  const r = await importFromLdap(d, `ldap://127.0.0.1:${port}/dc=partner`, 'ldap-partner.test', { trustAnchors: [caPem], publish: false });
  t.equal(r.keys.smime?.fingerprint, rec.keys.smime!.fingerprint, 'the certificate from userCertificate;binary');
  t.equal(r.keys.openpgp?.fingerprint, rec.keys.openpgp!.fingerprint, 'and the pgpKey');
  t.equal(r.provenance.origin, `ldap://127.0.0.1:${port}/dc=partner`);
  await rejectsCode(t, importFromLdap(d, `ldap://127.0.0.1:${port}/dc=partner`, 'absent.test', { trustAnchors: [caPem], publish: false }), 'NOT_FOUND');
  await rejectsCode(t, importFromLdap(d, 'ldap://127.0.0.1:1/dc=x', 'ldap-partner.test', { trustAnchors: [], publish: false }), 'LOOKUP_UNAVAILABLE');

  // During the partner's roll its entry lists the next keys after the current ones: the current ones are imported.
  const { record: rolling } = await announceForTest(partner, 'ldap-partner.test');
  const again = await memoryDirectory();
  const r2 = await importFromLdap(again, `ldap://127.0.0.1:${port}/dc=partner`, 'ldap-partner.test', { trustAnchors: [caPem, rolling.next!.smime!.chain[1]!], publish: false });
  t.equal(r2.keys.openpgp?.fingerprint, rec.keys.openpgp!.fingerprint, 'the current OpenPGP key, not the next one');
  t.equal(r2.keys.smime?.fingerprint, rec.keys.smime!.fingerprint, 'the current certificate, not the next one');
});
