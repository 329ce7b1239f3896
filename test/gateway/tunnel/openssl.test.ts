// Interop with OpenSSL's `cms` command (Debian package openssl), both directions.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseDomain } from '../../../directory/domain.js';
import { decryptTunnel, encryptTunnel, readTunnel } from '../../../gateway/tunnel/tunnel.js';
import { fieldValue, parseEntity } from '../../../gateway/tunnel/mime.js';
import { rejectsCode, run, tempDir } from '../../helpers.js';
import { aeadPeer, makeDomain, NOW, peer, sampleMessage } from './fixtures.js';

const [alpha, beta] = await Promise.all([makeDomain('alpha.test'), makeDomain('beta.test')]);
const original = sampleMessage(7);
const dir = tempDir(t, 'mailmesh-openssl-');
const file = (name: string, data: string | Buffer) => {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
};
const alphaLeaf = file('alpha-leaf.pem', alpha.keys.smime!.chain[0]!);
const alphaCa = file('alpha-ca.pem', alpha.keys.smime!.chain[1]!);
const alphaKey = file('alpha-key.pem', alpha.secrets.smime!.keyPkcs8Pem);
const betaLeaf = file('beta-leaf.pem', beta.keys.smime!.chain[0]!);
const betaKey = file('beta-key.pem', beta.secrets.smime!.keyPkcs8Pem);

/** The output of an openssl command that must succeed (run() rejects with its stderr otherwise). */
async function openssl(args: string[], input: Buffer): Promise<Buffer> {
  return (await run('openssl', args, { input })).stdout;
}

t.test('openssl cms -decrypt then -verify reads our AuthEnvelopedData (AES-256-GCM) tunnel message', async (t) => {
  const sealed = await encryptTunnel('smime', readTunnel(original), alpha, aeadPeer(beta), { now: NOW });
  t.match(fieldValue(parseEntity(sealed).fields, 'content-type'), /^application\/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"$/, 'RFC 8551 §3.4 smime-type');
  const decrypted = await openssl(['cms', '-decrypt', '-recip', betaLeaf, '-inkey', betaKey], sealed);
  t.match(decrypted.toString('latin1'), /smime-type=signed-data/, 'the authenticated content is a signed-data entity');
  const verified = await run('openssl', ['cms', '-verify', '-CAfile', alphaCa], { input: decrypted });
  t.match(verified.stderr, /Verification successful/);
  t.ok(verified.stdout.equals(original), 'the signed content is the original message, byte for byte');
  const asn1 = (await openssl(['cms', '-cmsout', '-print'], sealed)).toString();
  t.match(asn1, /contentType: id-smime-ct-authEnvelopedData/, 'AuthEnvelopedData (RFC 5083)');
  t.match(asn1, /algorithm: aes-256-gcm/, 'AES-256-GCM (RFC 5084)');
  t.match(asn1, /rsaesOaep/, 'key transport is RSAES-OAEP');
  t.match(asn1, /sha256/, 'OAEP with SHA-256');
  // Changed by one bit, it no longer opens: openssl checks the GCM tag, and so do we.
  const b64 = parseEntity(sealed);
  const der = Buffer.from(sealed.subarray(b64.bodyStart).toString('latin1'), 'base64');
  der[der.length - 40] ^= 1; // inside the ciphertext, before the 16-octet mac
  const flipped = Buffer.concat([sealed.subarray(0, b64.bodyStart), Buffer.from(der.toString('base64').replace(/.{1,76}/g, '$&\r\n'))]);
  const failed = await run('openssl', ['cms', '-decrypt', '-recip', betaLeaf, '-inkey', betaKey], { input: flipped, allowFail: true });
  t.not(failed.code, 0, 'openssl refuses the changed message');
  await rejectsCode(t, decryptTunnel(readTunnel(flipped), beta, peer(alpha), { now: NOW }), 'TUNNEL_DECRYPT_FAILED', 'and so do we');
});

t.test('openssl cms -decrypt then -verify reads our CBC S/MIME tunnel message (a peer that announces no AEAD)', async (t) => {
  const sealed = await encryptTunnel('smime', readTunnel(original), alpha, peer(beta), { now: NOW });
  const decrypted = await openssl(['cms', '-decrypt', '-recip', betaLeaf, '-inkey', betaKey], sealed);
  t.match(decrypted.toString('latin1'), /smime-type=signed-data/, 'the enveloped content is a signed-data entity');
  const verified = await run('openssl', ['cms', '-verify', '-CAfile', alphaCa], { input: decrypted });
  t.match(verified.stderr, /Verification successful/);
  t.ok(verified.stdout.equals(original), 'the signed content is the original message, byte for byte');
  const asn1 = await openssl(['cms', '-cmsout', '-print'], sealed);
  t.match(asn1.toString(), /rsaesOaep/, 'key transport is RSAES-OAEP');
  t.match(asn1.toString(), /sha256/, 'OAEP with SHA-256');
  t.match(asn1.toString(), /aes-256-cbc/, 'content encrypted with AES-256-CBC');
});

const SIGNINGS: Array<[string, string[]]> = [
  ['opaque signed-data', ['-nodetach']],
  ['multipart/signed (clear-signed)', []],
];
const ENCRYPTIONS: Array<[string, string[], string]> = [
  ['RSA PKCS#1 v1.5 + AES-256-CBC', ['-aes256', '-recip', betaLeaf], 'rsaEncryption'],
  // -keyopt applies to the -recip before it
  ['RSA-OAEP + AES-128-CBC', ['-aes128', '-recip', betaLeaf, '-keyopt', 'rsa_padding_mode:oaep'], 'rsaesOaep'],
  ['RSA-OAEP/SHA-256 + AES-192-CBC', ['-aes192', '-recip', betaLeaf, '-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256'], 'sha256'],
  ['AES-256-GCM (AuthEnvelopedData)', ['-aes-256-gcm', '-recip', betaLeaf], 'authEnvelopedData'],
];

for (const [signName, signArgs] of SIGNINGS) {
  for (const [encName, encArgs, marker] of ENCRYPTIONS) {
    t.test(`we decrypt openssl cms -sign (${signName}) | -encrypt (${encName})`, async (t) => {
      const signed = await openssl(['cms', '-sign', '-signer', alphaLeaf, '-inkey', alphaKey, '-certfile', alphaCa, ...signArgs], original);
      const enc = await openssl(['cms', '-encrypt', ...encArgs], signed);
      const printed = (await openssl(['cms', '-cmsout', '-print'], enc)).toString();
      t.match(printed, marker, `made with ${marker}`);
      const r = await decryptTunnel(readTunnel(enc), beta, peer(alpha), { now: NOW });
      t.equal(r.format, 'smime');
      t.equal(r.signature, 'valid');
      t.equal(r.signerFingerprint, alpha.keys.smime!.fingerprint);
      t.ok(r.inner.equals(original), 'inner message byte-identical');
      await rejectsCode(t, decryptTunnel(readTunnel(enc), alpha, peer(alpha)), 'TUNNEL_NOT_FOR_US', 'not for alpha');
    });
  }
}

t.test('a PKCS#1 v1.5 key transport under the wrong key fails like any wrong key (implicit rejection)', async (t) => {
  // Encrypted for beta's certificate, but the recipient key given is alpha's: the RSA decryption
  // yields bad padding, the synthetic key fails the GCM tag, and the error is the generic one.
  const enc = await openssl(['cms', '-encrypt', '-aes-256-gcm', '-recip', betaLeaf], original);
  const impostor = { ...beta, secrets: { smime: { keyPkcs8Pem: alpha.secrets.smime!.keyPkcs8Pem } } };
  const got = await decryptTunnel(readTunnel(enc), impostor).then(
    () => 'resolved',
    (e: { code?: string }) => e.code,
  );
  t.equal(got, 'TUNNEL_DECRYPT_FAILED');
  const unsigned = await decryptTunnel(readTunnel(enc), beta, peer(alpha));
  t.equal(unsigned.signature, 'absent', 'encrypted without signing: absent');
  t.ok(unsigned.inner.equals(original));
});

// RFC 8551 §2.7: 64-bit block ciphers and short keys are refused on receipt. OpenSSL 3 keeps
// DES and RC2 in its legacy provider. OpenSSL 3.0's default for `cms -encrypt` is 3DES.
const WEAK: Array<[string, string[], string]> = [
  ['3DES (-des3)', ['-des3'], 'des-ede3-cbc'],
  ['the default cipher of openssl 3.0 (3DES)', [], 'des-ede3-cbc'],
  ['RC2 (-rc2)', ['-provider', 'legacy', '-provider', 'default', '-rc2'], 'rc2-cbc'],
  ['DES (-des)', ['-provider', 'legacy', '-provider', 'default', '-des'], 'des-cbc'],
];
for (const [name, args, cipher] of WEAK) {
  t.test(`${name} content encryption is refused with TUNNEL_WEAK_ALGORITHM`, async (t) => {
    const signed = await openssl(['cms', '-sign', '-signer', alphaLeaf, '-inkey', alphaKey, '-nodetach'], original);
    const enc = await openssl(['cms', '-encrypt', ...args, '-recip', betaLeaf], signed);
    t.match((await openssl(['cms', '-cmsout', '-print'], enc)).toString(), cipher, `made with ${cipher}`);
    await rejectsCode(t, decryptTunnel(readTunnel(enc), beta, peer(alpha), { now: NOW }), 'TUNNEL_WEAK_ALGORITHM');
    const e = await decryptTunnel(readTunnel(enc), beta, peer(alpha)).catch((err: Error) => err);
    t.match((e as Error).message, `content encryption ${cipher}`, 'the message names the cipher');
  });
}

for (const md of ['sha1', 'md5']) {
  t.test(`a signature with ${md} is refused with TUNNEL_WEAK_ALGORITHM (RFC 8551 §2.1)`, async (t) => {
    const signed = await openssl(['cms', '-sign', '-md', md, '-signer', alphaLeaf, '-inkey', alphaKey, '-nodetach'], original);
    const enc = await openssl(['cms', '-encrypt', '-aes-256-gcm', '-recip', betaLeaf], signed);
    await rejectsCode(t, decryptTunnel(readTunnel(enc), beta, peer(alpha), { now: NOW }), 'TUNNEL_WEAK_ALGORITHM');
  });
}

t.test('RSA under 2048 bits is refused: key transport both ways, and a signer key', async (t) => {
  const weakKey = file('weak-key.pem', (await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'], Buffer.alloc(0))).toString());
  const weakCert = (await openssl(['req', '-x509', '-new', '-key', weakKey, '-subj', '/CN=weak.test', '-days', '2', '-addext', 'keyUsage=digitalSignature,keyEncipherment'], Buffer.alloc(0))).toString();
  const weakLeaf = file('weak-leaf.pem', weakCert);
  // Received: encrypted to a 1024-bit domain key.
  const weakDomain = { domain: parseDomain('weak.test'), keys: { smime: { ...beta.keys.smime!, chain: [weakCert] } }, secrets: { smime: { keyPkcs8Pem: readKey(weakKey) } } };
  const toWeak = await openssl(['cms', '-encrypt', '-aes-256-gcm', '-recip', weakLeaf], original);
  await rejectsCode(t, decryptTunnel(readTunnel(toWeak), weakDomain), 'TUNNEL_WEAK_ALGORITHM', 'key transport to a 1024-bit key');
  // Sent: to a 1024-bit recipient certificate, AEAD or CBC.
  await rejectsCode(t, encryptTunnel('smime', readTunnel(original), alpha, { domain: weakDomain.domain, keys: weakDomain.keys }), 'TUNNEL_WEAK_ALGORITHM', 'CBC to a 1024-bit recipient');
  await rejectsCode(t, encryptTunnel('smime', readTunnel(original), alpha, aeadPeer(weakDomain)), 'TUNNEL_WEAK_ALGORITHM', 'GCM to a 1024-bit recipient');
  // Signed with a 1024-bit key.
  const signed = await openssl(['cms', '-sign', '-signer', weakLeaf, '-inkey', weakKey, '-nodetach'], original);
  const enc = await openssl(['cms', '-encrypt', '-aes-256-gcm', '-recip', betaLeaf], signed);
  await rejectsCode(t, decryptTunnel(readTunnel(enc), beta, peer(alpha), { now: NOW }), 'TUNNEL_WEAK_ALGORITHM', 'a 1024-bit signer');
});

function readKey(path: string): string {
  return readFileSync(path, 'utf8');
}
