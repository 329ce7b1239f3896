// Interop with OpenSSL's `cms` command (Debian package openssl), both directions.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { decryptTunnel, encryptTunnel } from '../../../gateway/tunnel/tunnel.js';
import { rejectsCode, run, tempDir } from '../../helpers.js';
import { makeDomain, NOW, peer, sampleMessage } from './fixtures.js';

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

t.test('openssl cms -decrypt then -verify reads our S/MIME tunnel message', async (t) => {
  const sealed = await encryptTunnel('smime', original, alpha, peer(beta), { now: NOW });
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
  ['the default cipher', ['-recip', betaLeaf], 'rsaEncryption'],
];

for (const [signName, signArgs] of SIGNINGS) {
  for (const [encName, encArgs, marker] of ENCRYPTIONS) {
    t.test(`we decrypt openssl cms -sign (${signName}) | -encrypt (${encName})`, async (t) => {
      const signed = await openssl(['cms', '-sign', '-signer', alphaLeaf, '-inkey', alphaKey, '-certfile', alphaCa, ...signArgs], original);
      const enc = await openssl(['cms', '-encrypt', ...encArgs], signed);
      const printed = (await openssl(['cms', '-cmsout', '-print'], enc)).toString();
      t.match(printed, marker, `made with ${marker}`);
      const r = await decryptTunnel(enc, beta, peer(alpha), { now: NOW });
      t.equal(r.format, 'smime');
      t.equal(r.signature, 'valid');
      t.equal(r.signerFingerprint, alpha.keys.smime!.fingerprint);
      t.ok(r.inner.equals(original), 'inner message byte-identical');
      await rejectsCode(t, decryptTunnel(enc, alpha, peer(alpha)), 'TUNNEL_NOT_FOR_US', 'not for alpha');
    });
  }
}

t.test('a PKCS#1 v1.5 key transport under the wrong key fails like any wrong key (implicit rejection)', async (t) => {
  // Encrypted for beta's certificate, but the recipient key given is alpha's: the RSA decryption
  // yields bad padding, the synthetic key fails the GCM tag, and the error is the generic one.
  const enc = await openssl(['cms', '-encrypt', '-aes-256-gcm', '-recip', betaLeaf], original);
  const impostor = { ...beta, secrets: { smime: { keyPkcs8Pem: alpha.secrets.smime!.keyPkcs8Pem } } };
  const got = await decryptTunnel(enc, impostor).then(
    () => 'resolved',
    (e: { code?: string }) => e.code,
  );
  t.equal(got, 'TUNNEL_DECRYPT_FAILED');
  const unsigned = await decryptTunnel(enc, beta, peer(alpha));
  t.equal(unsigned.signature, 'absent', 'encrypted without signing: absent');
  t.ok(unsigned.inner.equals(original));
});
