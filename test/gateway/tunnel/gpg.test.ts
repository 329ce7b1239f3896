// Interop with GnuPG 2.2 (Debian package gnupg), both directions.
import t, { type Test } from 'tap';
import { decryptTunnel, encryptTunnel, readTunnel } from '../../../gateway/tunnel/tunnel.js';
import { toCrlf } from '../../../gateway/tunnel/mime.js';
import { gpgHome, rejectsCode, run } from '../../helpers.js';
import { makeDomain, NOW, peer, sampleMessage } from './fixtures.js';

const [alpha, beta, gamma] = await Promise.all([makeDomain('alpha.test'), makeDomain('beta.test'), makeDomain('gamma.test')]);
const original = sampleMessage(3);
const alphaFpr = alpha.keys.openpgp!.fingerprint;
const betaFpr = beta.keys.openpgp!.fingerprint;

/** A GnuPG home with these keys imported (gpg 2.2 imports openpgp.js's unprotected keys as they are). */
async function gnupgHome(t: Test, keys: string[]): Promise<(args: string[], input?: Buffer) => ReturnType<typeof run>> {
  const { gpg } = gpgHome(t);
  for (const k of keys) await gpg(['--import'], k);
  return (args, input) => gpg(['--no-tty', '--trust-model', 'always', ...args], input);
}

/** RFC 3156 §4 around an armored message, built by hand as another client would. */
function pgpMime(armored: string): Buffer {
  return Buffer.from(
    toCrlf(
      'From: alice@alpha.test\nTo: bob@beta.test\nSubject: ...\nMIME-Version: 1.0\n' +
        'Content-Type: multipart/encrypted;\n protocol="application/pgp-encrypted";\n boundary="XyZ"\n\n' +
        '--XyZ\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n' +
        '--XyZ\nContent-Type: application/octet-stream; name="msg.asc"\n\n' + armored + '\n--XyZ--\n',
    ),
  );
}

t.test('gpg --decrypt reads our PGP/MIME tunnel message and finds a good signature', async (t) => {
  const gpg = await gnupgHome(t, [beta.secrets.openpgp!.armored, alpha.keys.openpgp!.armored]);
  const sealed = await encryptTunnel('pgp-mime', readTunnel(original), alpha, peer(beta), { now: NOW });
  const armored = /-----BEGIN PGP MESSAGE-----[\s\S]+?-----END PGP MESSAGE-----\r\n/.exec(sealed.toString('latin1'))![0];
  const r = await gpg(['--status-fd', '2', '--decrypt'], Buffer.from(armored));
  t.equal(r.code, 0, `gpg --decrypt${r.code ? ': ' + r.stderr : ''}`);
  t.match(r.stderr, /\[GNUPG:\] GOODSIG /, 'GOODSIG');
  t.match(r.stderr, new RegExp(`\\[GNUPG:\\] VALIDSIG ${alphaFpr} `), 'VALIDSIG by the sender domain key');
  t.match(r.stderr, /\[GNUPG:\] PLAINTEXT 62 /, 'binary literal data (format b = 0x62)');
  t.ok(r.stdout.equals(original), 'plaintext is the original, byte for byte');
});

t.test('we decrypt what gpg --encrypt --sign makes', async (t) => {
  const gpg = await gnupgHome(t, [alpha.secrets.openpgp!.armored, beta.keys.openpgp!.armored, gamma.keys.openpgp!.armored]);
  const cases: Array<[string, string[], 'valid' | 'absent']> = [
    ['--encrypt --sign', ['--encrypt', '--sign', '--local-user', alphaFpr, '--recipient', betaFpr], 'valid'],
    ['--encrypt --sign, uncompressed', ['--encrypt', '--sign', '--compress-algo', 'none', '--local-user', alphaFpr, '--recipient', betaFpr], 'valid'],
    ['--encrypt --sign to two recipients', ['--encrypt', '--sign', '--local-user', alphaFpr, '--recipient', gamma.keys.openpgp!.fingerprint, '--recipient', betaFpr], 'valid'],
    ['--hidden-recipient (wildcard key ID)', ['--encrypt', '--sign', '--local-user', alphaFpr, '--hidden-recipient', betaFpr], 'valid'],
    ['--encrypt only', ['--encrypt', '--recipient', betaFpr], 'absent'],
  ];
  for (const [name, args, signature] of cases) {
    const enc = await gpg(['--armor', ...args], original);
    t.equal(enc.code, 0, `gpg ${name}${enc.code ? ': ' + enc.stderr : ''}`);
    const r = await decryptTunnel(readTunnel(pgpMime(enc.stdout.toString('latin1'))), beta, peer(alpha));
    t.equal(r.signature, signature, `${name}: signature ${signature}`);
    if (signature === 'valid') t.equal(r.signerFingerprint, alphaFpr);
    t.ok(r.inner.equals(original), `${name}: inner byte-identical`);
  }
  const toGamma = await gpg(['--armor', '--encrypt', '--sign', '--local-user', alphaFpr, '--recipient', gamma.keys.openpgp!.fingerprint], original);
  await rejectsCode(t, decryptTunnel(readTunnel(pgpMime(toGamma.stdout.toString('latin1'))), beta, peer(alpha)), 'TUNNEL_NOT_FOR_US');
});
