import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t from 'tap';
import { parseDomain } from '../../directory/domain.js';
import { generateDomainKeys, importCertificates, importOpenPgp } from '../../directory/keys.js';
import { pemToDer } from '../../directory/smime.js';
import { gpgHome, rejectsCode, run, tempDir } from '../helpers.js';

const partner = parseDomain('partner.example');
const now = new Date();

t.test('generated domain keys: the shapes docs/architecture.md asks for, readable by gpg and openssl', async (t) => {
  const domain = parseDomain('keys.example');
  const { keys, secrets } = await generateDomainKeys(domain, { openpgp: 'curve25519', validDays: 30 }, now);
  t.match(keys.openpgp!.fingerprint, /^[0-9A-F]{40}$/);
  t.equal(keys.openpgp!.keyId, keys.openpgp!.fingerprint.slice(-16));
  t.same(keys.openpgp!.userIds, ['keys.example domain key <domainkey@keys.example>']);
  t.match(keys.openpgp!.algorithm, /eddsa/i);
  t.equal(keys.smime!.chain.length, 2);
  t.match(keys.smime!.fingerprint, /^[0-9a-f]{64}$/);

  const { gpg } = gpgHome(t);
  await gpg(['--import'], keys.openpgp!.armored);
  const listing = (await gpg(['--with-colons', '--list-keys'])).stdout.toString();
  t.match(listing, `fpr:::::::::${keys.openpgp!.fingerprint}:`, 'gpg computes the same fingerprint');
  t.match(listing, /^pub:.*:ed25519:/m);
  t.match(listing, /^sub:.*:e:.*:cv25519:/m, 'a Curve25519 encryption subkey');
  // The private key imports into gpg too (the gateway's key handling interoperates).
  await gpg(['--import'], secrets.openpgp!.armored);
  t.match((await gpg(['--with-colons', '--list-secret-keys'])).stdout.toString(), keys.openpgp!.fingerprint);

  const dir = tempDir(t);
  writeFileSync(join(dir, 'leaf.pem'), keys.smime!.chain[0]!);
  writeFileSync(join(dir, 'ca.pem'), keys.smime!.chain[1]!);
  const verified = await run('openssl', ['verify', '-purpose', 'smimeencrypt', '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')]);
  t.match(verified.stdout.toString(), /leaf\.pem: OK/);
  const text = (await run('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text'])).stdout.toString();
  t.match(text, /Public-Key: \(3072 bit\)/);
  t.match(text, /email:domainkey@keys\.example, DNS:keys\.example/);
  t.match(text, /E-mail Protection/);
  t.match(text, /Digital Signature, Key Encipherment/);
  const fp = (await run('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-fingerprint', '-sha256'])).stdout.toString();
  t.equal(fp.split('=')[1]!.trim().replace(/:/g, '').toLowerCase(), keys.smime!.fingerprint, 'openssl agrees on the SHA-256 fingerprint');
  t.same(pemToDer(keys.smime!.chain[0]!).length > 500, true);
});

t.test('RSA-3072 OpenPGP keys for legacy peers', async (t) => {
  const { keys } = await generateDomainKeys(parseDomain('rsa.example'), { openpgp: 'rsa3072', validDays: 30 }, now);
  t.match(keys.openpgp!.algorithm, /^rsa.*\/3072$/);
});

t.test('imported OpenPGP keys made by gpg: accepted or refused with a stable code', async (t) => {
  const now = new Date(Date.now() + 60_000); // after the keys' creation in this test
  const { gpg } = gpgHome(t);
  const make = async (uid: string, algo: string, usage: string, extra: string[] = []) => {
    await gpg([...extra, '--quick-gen-key', uid, algo, usage, extra.length ? '1d' : '0']);
    return (await gpg(['--armor', '--export', uid])).stdout.toString();
  };
  const good = await make('Alice <alice@partner.example>', 'ed25519', 'sign,cert');
  const goodFpr = (await gpg(['--with-colons', '--list-keys', 'alice@partner.example'])).stdout.toString().match(/fpr:+([0-9A-F]{40})/)![1]!;
  await gpg(['--quick-add-key', goodFpr, 'cv25519', 'encr']);
  const withSubkey = (await gpg(['--armor', '--export', 'alice@partner.example'])).stdout.toString();
  const info = await importOpenPgp(withSubkey, partner, now);
  t.equal(info.fingerprint, goodFpr);
  const binary = (await gpg(['--export', 'alice@partner.example'])).stdout;
  t.equal((await importOpenPgp(new Uint8Array(binary), partner, now)).fingerprint, goodFpr, 'binary form');

  await rejectsCode(t, importOpenPgp(good, partner, now), 'KEY_NO_ENCRYPTION', 'a signing-only key');
  await rejectsCode(t, importOpenPgp(withSubkey, parseDomain('other.example'), now), 'KEY_WRONG_DOMAIN');
  const weak = await make('Weak <weak@partner.example>', 'rsa1024', 'sign,cert,encr');
  await rejectsCode(t, importOpenPgp(weak, partner, now), 'KEY_TOO_WEAK');
  const old = await make('Old <old@partner.example>', 'ed25519', 'sign,cert', ['--faked-system-time', '20200101T000000!']);
  await rejectsCode(t, importOpenPgp(old, partner, now), 'KEY_EXPIRED');
  await rejectsCode(t, importOpenPgp('not a key', partner, now), 'KEY_UNREADABLE');
  await rejectsCode(t, importOpenPgp(new Uint8Array([0x99, 0x01, 0x02]), partner, now), 'KEY_UNREADABLE');

  const pk = await openpgp.readKey({ armoredKey: withSubkey });
  const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'r@partner.example' }], format: 'object' });
  const { publicKey: revoked } = await openpgp.revokeKey({ key: privateKey, format: 'armored' });
  await rejectsCode(t, importOpenPgp(revoked, partner, now), 'KEY_REVOKED');
  t.ok(pk.getFingerprint(), 'sanity');
});

t.test('imported certificates made by openssl: accepted or refused with a stable code', async (t) => {
  const dir = tempDir(t);
  const f = (n: string) => join(dir, n);
  const ossl = (args: string[]) => run('openssl', args, { cwd: dir });
  await ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=Partner CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  const leaf = async (name: string, ext: string, bits = 2048, ca = 'ca') => {
    writeFileSync(f(`${name}.ext`), ext);
    await ossl(['req', '-newkey', `rsa:${bits}`, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    await ossl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '30',
      '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
    const { readFileSync } = await import('node:fs');
    return readFileSync(f(`${name}.pem`), 'utf8');
  };
  const caPem = (await import('node:fs')).readFileSync(f('ca.pem'), 'utf8');
  const now = new Date(Date.now() + 60_000); // after the certificates' notBefore
  const okExt = 'subjectAltName=email:alice@partner.example\nextendedKeyUsage=emailProtection\nkeyUsage=digitalSignature,keyEncipherment\n';
  const good = await leaf('good', okExt);
  const info = await importCertificates(caPem + good, partner, now);
  t.equal(info.chain.length, 2, 'the chain is put in order, leaf first');
  t.match(info.subject, /CN=good/);
  t.equal((await importCertificates(new Uint8Array(pemToDer(good)), partner, now)).fingerprint, info.fingerprint, 'DER');

  await rejectsCode(t, importCertificates(good, parseDomain('other.example'), now), 'KEY_WRONG_DOMAIN');
  await rejectsCode(t, importCertificates(good, partner, new Date(now.getTime() + 60 * 86400_000)), 'KEY_EXPIRED');
  await rejectsCode(t, importCertificates(good, partner, new Date(now.getTime() - 2 * 86400_000)), 'KEY_NOT_YET_VALID');
  await rejectsCode(t, importCertificates(await leaf('weak', okExt, 1024), partner, now), 'KEY_TOO_WEAK');
  await rejectsCode(t, importCertificates(await leaf('tls', okExt.replace('emailProtection', 'serverAuth')), partner, now), 'KEY_USAGE');
  await rejectsCode(t, importCertificates(await leaf('signonly', okExt.replace(',keyEncipherment', '')), partner, now), 'KEY_NO_ENCRYPTION');
  await ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'evil.key', '-out', 'evil.pem', '-days', '30', '-subj', '/CN=Partner CA']);
  const evilCa = (await import('node:fs')).readFileSync(f('evil.pem'), 'utf8');
  await rejectsCode(t, importCertificates(good + evilCa, partner, now), 'CHAIN_INVALID', 'an issuer of the same name with another key');
  await rejectsCode(t, importCertificates('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', partner, now), 'KEY_UNREADABLE');
  await rejectsCode(t, importCertificates(new Uint8Array([0x30, 0x03, 0x01, 0x01]), partner, now), 'KEY_UNREADABLE');
  await rejectsCode(t, importCertificates('', partner, now), 'KEY_UNREADABLE');
});
