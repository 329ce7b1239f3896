import t from 'tap';
import { parseDomain } from '../../../directory/domain.js';
import type { TunnelFormat } from '../../../directory/record.js';
import {
  addAuthenticationResults,
  classifyMessage,
  decryptTunnel,
  encryptTunnel,
  isPersonallyEncrypted,
  readTunnel,
  TUNNEL_HEADER,
} from '../../../gateway/tunnel/tunnel.js';
import * as openpgp from 'openpgp';
import { headerFields } from '../../../gateway/header.js';
import { sealEnvelope } from '../../../gateway/tunnel/cms/seal.js';
import { signContent } from '../../../gateway/tunnel/cms/signed.js';
import { encodeBase64Lines, fieldValue, parseEntity, toCrlf } from '../../../gateway/tunnel/mime.js';
import { rejectsCode } from '../../helpers.js';
import { makeDomain, NOW, peer, sampleMessage } from './fixtures.js';

const [alpha, beta, gamma] = await Promise.all([makeDomain('alpha.test'), makeDomain('beta.test'), makeDomain('gamma.test')]);
const original = sampleMessage();
const FORMATS: TunnelFormat[] = ['pgp-mime', 'smime'];

/** Flips one bit in the middle of the encrypted payload (after the outer header). */
function tamper(msg: Buffer, format: TunnelFormat): Buffer {
  const text = msg.toString('latin1');
  const start = format === 'pgp-mime' ? text.indexOf('-----BEGIN PGP MESSAGE-----') + 120 : parseEntity(msg).bodyStart;
  const at = start + Math.floor((text.length - start) * 0.6);
  const lineStart = text.lastIndexOf('\n', at) + 1;
  const chars = [...text];
  // Swap one base64 character for another (stays well-formed base64, changes the ciphertext).
  const i = lineStart + 5;
  chars[i] = chars[i] === 'A' ? 'B' : 'A';
  return Buffer.from(chars.join(''), 'latin1');
}

for (const format of FORMATS) {
  t.test(`${format}: round trip keeps the original bytes and verifies the signature`, async (t) => {
    const sealed = await encryptTunnel(format, readTunnel(original), alpha, peer(beta), { now: NOW });
    const outer = parseEntity(sealed);
    t.equal(fieldValue(outer.fields, 'subject'), '...', 'Subject hidden');
    t.equal(fieldValue(outer.fields, TUNNEL_HEADER), format);
    for (const f of ['from', 'to', 'cc', 'date', 'message-id']) t.equal(fieldValue(outer.fields, f), fieldValue(parseEntity(original).fields, f), `${f} copied`);
    t.notOk(sealed.includes('Quarterly'), 'the subject does not leak');
    t.notOk(sealed.includes('data.bin'), 'the body does not leak');
    t.ok(sealed.every((b) => b < 0x80), 'the tunnel message is 7-bit');
    t.notOk(/[^\r]\n/.test(sealed.toString('latin1')), 'every line ends in CRLF');

    const r = await decryptTunnel(readTunnel(sealed), beta, peer(alpha), { now: NOW });
    t.equal(r.format, format);
    t.ok(r.inner.equals(original), 'inner message byte-identical');
    t.equal(r.signature, 'valid');
    t.equal(r.signerDomain, 'alpha.test');
    t.equal(r.signerFingerprint, format === 'pgp-mime' ? alpha.keys.openpgp!.fingerprint : alpha.keys.smime!.fingerprint);

    const kept = await encryptTunnel(format, readTunnel(original), alpha, peer(beta), { keepSubject: true });
    t.equal(fieldValue(parseEntity(kept).fields, 'subject'), 'Quarterly figures (confidential)', 'keepSubject keeps it');
  });

  t.test(`${format}: tampered, misaddressed and wrongly signed messages`, async (t) => {
    const sealed = await encryptTunnel(format, readTunnel(original), alpha, peer(beta));
    if (format === 'pgp-mime') {
      await rejectsCode(t, decryptTunnel(readTunnel(tamper(sealed, format)), beta, peer(alpha)), 'TUNNEL_DECRYPT_FAILED', 'tampered ciphertext (MDC)');
    } else {
      // AES-CBC has no integrity of its own: a flipped block decrypts to garbage that fails the padding
      // check or does not parse (both TUNNEL_DECRYPT_FAILED: no oracle), or breaks the signature (or
      // the signer's certificate). MALFORMED only if the flip hits the outer CMS structure. Never valid.
      const got = await decryptTunnel(readTunnel(tamper(sealed, format)), beta, peer(alpha)).then(
        (r) => r.signature,
        (e: { code?: string }) => e.code,
      );
      t.ok(['TUNNEL_DECRYPT_FAILED', 'TUNNEL_MALFORMED', 'invalid', 'unknown-signer'].includes(got ?? ''), `tampered CBC ciphertext: ${got}`);
    }
    await rejectsCode(t, decryptTunnel(readTunnel(sealed), gamma, peer(alpha)), 'TUNNEL_NOT_FOR_US', 'wrong recipient key');
    await rejectsCode(t, decryptTunnel(readTunnel(sealed.subarray(0, sealed.length - 200)), beta, peer(alpha)), 'TUNNEL_MALFORMED', 'truncated');

    const bySomeoneElse = await decryptTunnel(readTunnel(sealed), beta, peer(gamma));
    t.equal(bySomeoneElse.signature, 'key-changed', 'signature by a key that is not the claimed sender\'s, which has keys');
    t.notOk(bySomeoneElse.signerDomain);
    t.ok(bySomeoneElse.inner.equals(original));
    const noSender = await decryptTunnel(readTunnel(sealed), beta);
    t.equal(noSender.signature, 'unknown-signer', 'no sender record: the signer is unknown');

    // The sender record lacks this format's key.
    const partial = { domain: alpha.domain, keys: {} };
    t.equal((await decryptTunnel(readTunnel(sealed), beta, partial)).signature, 'unknown-signer');
    await rejectsCode(t, encryptTunnel(format, readTunnel(original), alpha, { domain: beta.domain, keys: {} }), 'TUNNEL_NO_KEY');
    await rejectsCode(t, decryptTunnel(readTunnel(sealed), { ...beta, secrets: {} }), 'TUNNEL_NO_KEY');
  });

  t.test(`${format}: classifier`, async (t) => {
    const sealed = await encryptTunnel(format, readTunnel(original), alpha, peer(beta));
    t.same(await classifyMessage(readTunnel(sealed), beta.keys), { kind: 'tunnel', format, keys: [0] });
    t.same(await classifyMessage(readTunnel(sealed), [gamma.keys, alpha.keys, beta.keys]), { kind: 'tunnel', format, keys: [2] }, 'to the third key of a ring');
    const personal = await classifyMessage(readTunnel(sealed), gamma.keys);
    t.match(personal, { kind: 'personal', format }, 'encrypted, but not to our domain key');
    t.equal(personal.kind === 'personal' && personal.recipients?.length, 1, 'it names what it is encrypted to');
    t.ok(await isPersonallyEncrypted(readTunnel(sealed)), 'without our keys it is someone else\'s encrypted mail');
    t.notOk(await isPersonallyEncrypted(readTunnel(sealed), beta.keys));
    t.notOk(await isPersonallyEncrypted(readTunnel(original), beta.keys));
  });
}

t.test('a signature that does not match the content is invalid', async (t) => {
  // S/MIME: a SignedData whose content was changed after signing, enveloped again.
  const signed = await signContent(original, alpha.keys.smime!.chain, alpha.secrets.smime!.keyPkcs8Pem, NOW);
  const at = signed.indexOf(Buffer.from('Quarterly'));
  signed[at] = 'q'.charCodeAt(0);
  const entity = Buffer.from('Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n' + encodeBase64Lines(signed));
  const env = await sealEnvelope(entity, beta.keys.smime!.chain[0]!);
  const msg = Buffer.from('Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n' + encodeBase64Lines(env));
  const s = await decryptTunnel(readTunnel(msg), beta, peer(alpha));
  t.equal(s.signature, 'invalid');
  t.equal(s.signerDomain, 'alpha.test');
  t.match(s.detail, /digest/i);

  // PGP/MIME: a one-pass message carrying alpha's signature over other data.
  const signingKeys = await openpgp.readPrivateKey({ armoredKey: alpha.secrets.openpgp!.armored });
  const other = await openpgp.createMessage({ binary: new Uint8Array(Buffer.from('other data')) });
  const signature = await openpgp.readSignature({ armoredSignature: await openpgp.sign({ message: other, signingKeys, detached: true }) });
  const armored = await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: new Uint8Array(original) }),
    encryptionKeys: await openpgp.readKey({ armoredKey: beta.keys.openpgp!.armored }),
    signature,
  });
  const pgp = Buffer.from(toCrlf('Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b\n\n--b\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n--b\nContent-Type: application/octet-stream\n\n' + armored + '\n--b--\n'));
  const p = await decryptTunnel(readTunnel(pgp), beta, peer(alpha));
  t.equal(p.signature, 'invalid');
  t.equal(p.signerFingerprint, alpha.keys.openpgp!.fingerprint);
  t.ok(p.inner.equals(original));

  // Unsigned: absent.
  const plainEnv = await sealEnvelope(original, beta.keys.smime!.chain[0]!);
  const unsigned = Buffer.from('Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n' + encodeBase64Lines(plainEnv));
  const u = await decryptTunnel(readTunnel(unsigned), beta, peer(alpha));
  t.equal(u.signature, 'absent');
  t.ok(u.inner.equals(original));
});

t.test('classifier: plain, inline PGP and garbage', async (t) => {
  t.same(await classifyMessage(readTunnel(original), beta.keys), { kind: 'plain' });
  t.same(await classifyMessage(readTunnel(Buffer.from('no header at all')), beta.keys), { kind: 'plain' });
  t.same(await classifyMessage(readTunnel(Buffer.from('Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x\r\n\r\n--x\r\n--x--\r\n')), beta.keys),
    { kind: 'personal', format: 'pgp-mime' }, 'unreadable PGP/MIME is not ours to open (and names no recipient)');
  const inline = Buffer.from('From: a@alpha.test\r\nContent-Type: text/plain\r\n\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n-----END PGP MESSAGE-----\r\n');
  t.same(await classifyMessage(readTunnel(inline), beta.keys), { kind: 'personal', format: 'inline-pgp' });
  const smimeSigned = Buffer.from('Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n\r\nMIIB\r\n');
  t.same(await classifyMessage(readTunnel(smimeSigned), beta.keys), { kind: 'plain' }, 'signed-only S/MIME is not encrypted');
});

t.test('Authentication-Results is prepended and forged ones with our authserv-id are removed', async (t) => {
  const sealed = await encryptTunnel('pgp-mime', readTunnel(original), alpha, peer(beta));
  const r = await decryptTunnel(readTunnel(sealed), beta, peer(alpha));
  const checked = { ...r, author: r.signerDomain, aligned: true, alignment: 'strict' as const, key: 'dnssec' };
  const forged = Buffer.concat([Buffer.from('Authentication-Results: GW.beta.test; mailmesh=pass\r\nAuthentication-Results: other.example; spf=pass\r\n'), r.inner]);
  const out = addAuthenticationResults(headerFields(forged), 'gw.beta.test', checked);
  const text = out.toString('latin1');
  t.ok(text.startsWith('Authentication-Results: gw.beta.test;\r\n\tmailmesh=pass (decrypted pgp-mime, openpgp-seipd with integrity; signature valid; author aligned, strict)\r\n' +
    `\theader.d=alpha.test header.b=${alpha.keys.openpgp!.fingerprint} header.from=alpha.test\r\n\tpolicy.cipher=openpgp-seipd policy.integrity=yes policy.key=dnssec\r\n`), text);
  t.notOk(text.includes('GW.beta.test'), 'the forged field claiming our authserv-id is gone');
  t.ok(text.includes('Authentication-Results: other.example; spf=pass\r\n'), 'other servers\' results stay');
  t.ok(out.subarray(out.length - original.length).equals(original), 'the rest of the message is unchanged');
  const none = addAuthenticationResults(headerFields(original), 'gw.beta.test', { format: 'smime', signature: 'absent', cipher: 'aes-256-gcm', integrity: true, aligned: false, alignment: 'strict' });
  t.ok(none.toString('latin1').startsWith('Authentication-Results: gw.beta.test;\r\n\tmailmesh=none (decrypted smime, aes-256-gcm with integrity; signature absent; no single author domain)\r\n\tpolicy.cipher=aes-256-gcm policy.integrity=yes\r\nFrom:'));
  const mismatch = addAuthenticationResults(headerFields(original), 'gw.beta.test', { ...checked, author: parseDomain('bank.test'), aligned: false });
  t.match(mismatch.toString('latin1'), /mailmesh=fail \([^)]*signature valid; author not aligned, strict\)\r\n\theader\.d=alpha\.test header\.b=\S+ header\.from=bank\.test\r\n/, 'a valid signature by another domain than the author is a fail');
  t.throws(() => addAuthenticationResults(headerFields(original), 'bad id;', checked), /authserv-id/);
});
