import 'reflect-metadata';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { certificateFingerprint } from '../../directory/smime.js';
import { importThirdParty } from '../../federation/importer.js';
import { rejectsCode, run, tempDir } from '../helpers.js';
import { memoryDirectory } from './helpers.js';

// Certificates made by openssl: the path from a domain's certificate to a trust anchor is built
// by issuer and signature whatever the order of the file, and only that path is accepted.
const dir = tempDir(t);
const f = (name: string) => join(dir, name);
const openssl = (args: string[]) => run('openssl', args, { cwd: dir });
const pem = (name: string) => readFileSync(f(`${name}.pem`), 'utf8');
const bundle = (...names: string[]) => Buffer.from(names.map(pem).join(''));

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n';
const leafExt = (domain: string) => `subjectAltName=email:domainkey@${domain},DNS:${domain}\nextendedKeyUsage=emailProtection\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n`;

/**
 * `name`.pem with subject CN=`cn`, issued by `issuer` (self-signed without one), for the key
 * `key`.key (made when it does not exist yet, so a second certificate can share a key).
 */
async function cert(name: string, o: { cn: string; issuer?: string; key?: string; ext: string }): Promise<void> {
  const key = f(`${o.key ?? name}.key`);
  writeFileSync(f(`${name}.ext`), o.ext);
  const keyArgs = o.key ? ['-key', key] : ['-newkey', 'rsa:2048', '-nodes', '-keyout', key];
  if (!o.issuer) {
    // `req -x509` takes extensions from a config section.
    writeFileSync(f(`${name}.cnf`), `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${o.ext}`);
    await openssl(['req', '-x509', ...keyArgs, '-out', f(`${name}.pem`), '-days', '30', '-subj', `/CN=${o.cn}`, '-extensions', 'v3', '-config', f(`${name}.cnf`)]);
    return;
  }
  await openssl(['req', '-new', ...keyArgs, '-out', f(`${name}.csr`), '-subj', `/CN=${o.cn}`]);
  await openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${o.issuer}.pem`), '-CAkey', f(`${o.issuer}.key`), '-CAcreateserial', '-days', '20', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)]);
}

// root ─ inter ─ leaf (partner.test), inter ─ otherleaf (other.test)
await cert('root', { cn: 'Partner Root', ext: CA_EXT });
await cert('inter', { cn: 'Partner Intermediate', issuer: 'root', ext: CA_EXT });
await cert('leaf', { cn: 'partner.test domain key', issuer: 'inter', ext: leafExt('partner.test') });
await cert('otherleaf', { cn: 'other.test domain key', issuer: 'inter', ext: leafExt('other.test') });
await cert('stranger', { cn: 'Unrelated CA', ext: CA_EXT });
// A new root cross-signed by the old one: newroot (self-signed) and newcross (same subject and key, issued by root).
await cert('newroot', { cn: 'Partner New Root', ext: CA_EXT });
await cert('newcross', { cn: 'Partner New Root', key: 'newroot', issuer: 'root', ext: CA_EXT });
await cert('newinter', { cn: 'Partner New Intermediate', issuer: 'newroot', ext: CA_EXT });
await cert('newleaf', { cn: 'partner.test domain key 2', issuer: 'newinter', ext: leafExt('partner.test') });
// The attack of issue "Authenticity" part 4: a self-signed certificate for victim.test next to an anchor-issued one for another domain.
await cert('selfvictim', { cn: 'victim.test domain key', ext: leafExt('victim.test') });

const fp = (name: string) => certificateFingerprint(new x509.X509Certificate(pem(name)));
const chainOf = (r: { keys: { smime?: { chain: string[] } } }) => r.keys.smime!.chain.map((c) => certificateFingerprint(new x509.X509Certificate(c)));
const opts = (...anchors: string[]) => ({ trustAnchors: anchors.map(pem), publish: true, origin: 'bundle.pem' });

t.test('a mis-ordered bundle is put in path order: leaf, intermediate, anchor', async (t) => {
  const d = await memoryDirectory();
  const r = await importThirdParty(d, 'partner.test', bundle('root', 'leaf', 'inter'), opts('root'));
  t.equal(r.keys.smime?.fingerprint, fp('leaf'), 'the leaf of the domain is the key');
  t.same(chainOf(r), [fp('leaf'), fp('inter'), fp('root')], 'exactly the path is published');
  t.match(r.provenance.verified, /chain to trust anchor Partner Root/);
  const alone = await importThirdParty(d, 'partner.test', bundle('inter', 'leaf'), opts('root'));
  t.same(chainOf(alone), [fp('leaf'), fp('inter'), fp('root')], 'the anchor completes the path when the file lacks it');
});

t.test('a certificate off the path is refused, whatever it is', async (t) => {
  const d = await memoryDirectory();
  await rejectsCode(t, importThirdParty(d, 'partner.test', bundle('leaf', 'inter', 'root', 'stranger'), opts('root')), 'CHAIN_UNRELATED', 'an unrelated CA');
  await rejectsCode(t, importThirdParty(d, 'partner.test', bundle('leaf', 'inter', 'otherleaf'), opts('root')), 'CHAIN_UNRELATED', 'a certificate of another domain from the same CA');
  t.equal(await d.store.getRecord('partner.test' as never), undefined, 'nothing stored');
});

t.test('a cross-signed anchor: each configured anchor gets its own path', async (t) => {
  const d = await memoryDirectory();
  const file = bundle('newroot', 'newleaf', 'newcross', 'newinter');
  const viaOld = await importThirdParty(d, 'partner.test', file, opts('root'));
  t.same(chainOf(viaOld), [fp('newleaf'), fp('newinter'), fp('newcross'), fp('root')], 'backtracks from the self-signed new root to its cross-certificate');
  const viaNew = await importThirdParty(d, 'partner.test', file, opts('newroot'));
  t.same(chainOf(viaNew), [fp('newleaf'), fp('newinter'), fp('newroot')], 'stops at the anchor; the cross-certificate of it is not published');
  await rejectsCode(t, importThirdParty(d, 'partner.test', file, opts('stranger')), 'TRUST_ANCHOR_UNKNOWN', 'neither path leads to another anchor');
});

t.test('a leaf for another domain is refused', async (t) => {
  const d = await memoryDirectory();
  await rejectsCode(t, importThirdParty(d, 'partner.test', bundle('otherleaf', 'inter', 'root'), opts('root')), 'KEY_WRONG_DOMAIN');
});

t.test('the attack bundle: a self-signed victim.test certificate beside an anchor-issued certificate of another domain', async (t) => {
  const d = await memoryDirectory();
  for (const order of [['selfvictim', 'otherleaf'], ['otherleaf', 'selfvictim'], ['selfvictim', 'otherleaf', 'inter', 'root']]) {
    await rejectsCode(t, importThirdParty(d, 'victim.test', bundle(...order), opts('root')), 'TRUST_ANCHOR_UNKNOWN', order.join(' + '));
  }
  t.equal(await d.findRecord('victim.test', { unpublished: true }), undefined, 'nothing stored, so discovery has nothing of it to serve');
});

t.test('a file of more certificates than a path needs is refused before any search', async (t) => {
  const d = await memoryDirectory();
  await rejectsCode(t, importThirdParty(d, 'partner.test', bundle('leaf', ...Array<string>(32).fill('inter')), opts('root')), 'KEY_UNREADABLE', '33 certificates');
  const dup = await importThirdParty(d, 'partner.test', bundle('leaf', 'inter', 'inter'), opts('root'));
  t.same(chainOf(dup), [fp('leaf'), fp('inter'), fp('root')], 'a certificate twice in the file is on the path once');
});
