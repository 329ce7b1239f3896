import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t from 'tap';
import { exportLdif } from '../../../directory/ldap/ldap.js';
import { renderSchemaFile } from '../../../directory/ldap/schema.js';
import { memoryDirectory, tempDir } from '../../helpers.js';
import { announceForTest } from '../announced.js';
import { ldapsearch, parseLdif, runText as run, startLdap } from './helpers.js';

// A domain in a roll (docs/lifecycle.md "Roll") on the LDAP face: the next certificate, key and
// key ID are further values of the domain's entry, after the current ones (docs/ldap.md "Entries").
const directory = await memoryDirectory();
const D = 'rolling.example';
await directory.addDomain(D);
const { record } = await announceForTest(directory, D);
const BASE = 'dc=mailmesh';
const DN = `mail=domainkey@${D},${BASE}`;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const current = record.keys;
const next = record.next!;

t.test('ldapsearch: both certificates and both OpenPGP keys, the current first', async (t) => {
  const { url } = await startLdap(t, directory);
  const r = await ldapsearch(url, BASE, `(mail=alice@${D})`, ['userCertificate;binary', 'pgpKey', 'pgpCertID', 'description']);
  t.equal(r.code, 0, r.stderr);
  const [entry] = parseLdif(r.stdout);
  t.equal(entry?.dn, DN);
  const certs = entry!.attrs.get('userCertificate;binary') as Buffer[];
  t.same(certs.map(sha256), [current.smime!.fingerprint, next.smime!.fingerprint], 'two DER certificates, current first');
  const keys = await Promise.all(entry!.attrs.get('pgpKey')!.map((v) => openpgp.readKey({ armoredKey: v.toString() })));
  t.same(keys.map((k) => k.getFingerprint().toUpperCase()), [current.openpgp!.fingerprint, next.openpgp!.fingerprint], 'two armored keys');
  t.same(entry!.attrs.get('pgpCertID'), [current.openpgp!.keyId, next.openpgp!.keyId]);
  t.match(String(entry!.attrs.get('description')![0]), `; next openpgp ${next.openpgp!.fingerprint}; next smime sha256 ${next.smime!.fingerprint}`);

  const byNextId = await ldapsearch(url, BASE, `(pgpCertID=${next.openpgp!.keyId.toLowerCase()})`, ['mail']);
  t.same(parseLdif(byNextId.stdout).map((e) => e.dn), [DN], 'a search by the next key ID finds the entry');
});

t.test('LDIF export: both values, and slapadd takes them with the mailmesh schema', async (t) => {
  const text = await exportLdif(directory, BASE);
  const entry = parseLdif(text).find((e) => e.dn === DN)!;
  t.same((entry.attrs.get('userCertificate;binary') as Buffer[]).map(sha256), [current.smime!.fingerprint, next.smime!.fingerprint]);
  t.equal(entry.attrs.get('pgpKey')?.length, 2);

  const dir = tempDir(t);
  const schema = join(dir, 'mailmesh.schema');
  const ldif = join(dir, 'export.ldif');
  writeFileSync(schema, renderSchemaFile());
  writeFileSync(ldif, text);
  mkdirSync(join(dir, 'db'));
  const conf = join(dir, 'slapd.conf');
  writeFileSync(conf, [
    ...['core', 'cosine', 'inetorgperson'].map((n) => `include /etc/ldap/schema/${n}.schema`),
    `include ${schema}`,
    'modulepath /usr/lib/ldap', 'moduleload back_mdb', 'database mdb', 'suffix "dc=mailmesh"', `directory ${join(dir, 'db')}`, 'maxsize 10485760', '',
  ].join('\n'));
  const added = await run('slapadd', ['-f', conf, '-l', ldif]);
  t.equal(added.code, 0, `slapadd: ${added.stderr}`);
  const cat = await run('slapcat', ['-f', conf, '-a', `(pgpCertID=${next.openpgp!.keyId})`, '-o', 'ldif-wrap=no']);
  const stored = parseLdif(cat.stdout);
  t.same(stored.map((e) => e.dn), [DN], 'slapd finds the entry by the next key ID');
  t.same((stored[0]?.attrs.get('pgpCertID') ?? []).slice().sort(), [current.openpgp!.keyId, next.openpgp!.keyId].sort(), 'both key IDs stored');
});
