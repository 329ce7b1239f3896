// S/MIME integrity: AuthEnvelopedData (AES-256-GCM) to peers that announce it, CBC to the others,
// what a rewrite of the ciphertext (EFAIL) does to each, and no padding oracle on CBC.
import t from 'tap';
import { decryptTunnel, encryptTunnel, readTunnel } from '../../../gateway/tunnel/tunnel.js';
import { parseEnvelope } from '../../../gateway/tunnel/cms/envelope.js';
import { sealAuthEnvelope, sealEnvelope } from '../../../gateway/tunnel/cms/seal.js';
import { encodeBase64Lines, fieldValue, parseEntity } from '../../../gateway/tunnel/mime.js';
import { items, octets } from '../../../gateway/tunnel/cms/asn1.js';
import { rejectsCode } from '../../helpers.js';
import { aeadPeer, makeDomain, NOW, peer, sampleMessage } from './fixtures.js';

const [alpha, beta] = await Promise.all([makeDomain('alpha.test'), makeDomain('beta.test')]);
const original = sampleMessage(3);

/** The outer header and the CMS DER of an S/MIME tunnel message. */
function split(msg: Buffer): { head: Buffer; der: Buffer } {
  const e = parseEntity(msg);
  return { head: msg.subarray(0, e.bodyStart), der: Buffer.from(msg.subarray(e.bodyStart).toString('latin1'), 'base64') };
}

function join(head: Buffer, der: Buffer): Buffer {
  return Buffer.concat([head, Buffer.from(encodeBase64Lines(der), 'latin1')]);
}

function xorAt(der: Buffer, at: number, a: string, b: string): void {
  for (let i = 0; i < a.length; i++) der[at + i] = der[at + i]! ^ a.charCodeAt(i) ^ b.charCodeAt(i);
}

/** A message as an S/MIME tunnel carries it, with `der` (EnvelopedData or AuthEnvelopedData) as its body. */
function tunnelMessage(der: Buffer, smimeType: string): Buffer {
  return join(Buffer.from(`Content-Type: application/pkcs7-mime; smime-type=${smimeType}; name="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\n\r\n`), der);
}

async function codeOf(p: Promise<unknown>): Promise<{ code?: string; message?: string }> {
  return p.then(
    () => ({}),
    (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
  );
}

t.test('capability negotiation: AES-256-GCM to a peer that announces it, AES-256-CBC to an older record', async (t) => {
  const cases = [
    { name: 'announces smime-aes-256-gcm', to: aeadPeer(beta), type: 'authEnveloped-data', cipher: 'aes-256-gcm', integrity: true },
    { name: 'announces nothing (older record)', to: peer(beta), type: 'enveloped-data', cipher: 'aes-256-cbc', integrity: false },
    { name: 'announces only unknown capabilities', to: { ...peer(beta), capabilities: ['smime-chacha20-poly1305'] }, type: 'enveloped-data', cipher: 'aes-256-cbc', integrity: false },
  ];
  for (const c of cases) {
    const sealed = await encryptTunnel('smime', readTunnel(original), alpha, c.to, { now: NOW });
    t.equal(fieldValue(parseEntity(sealed).fields, 'content-type'), `application/pkcs7-mime; smime-type=${c.type}; name="smime.p7m"`, `${c.name}: ${c.type}`);
    t.equal(parseEnvelope(split(sealed).der).kind, c.integrity ? 'authEnveloped' : 'enveloped', `${c.name}: the CMS content type`);
    const r = await decryptTunnel(readTunnel(sealed), beta, peer(alpha), { now: NOW });
    t.same({ cipher: r.cipher, integrity: r.integrity, signature: r.signature }, { cipher: c.cipher, integrity: c.integrity, signature: 'valid' }, `${c.name}: what the receiver reports`);
    t.ok(r.inner.equals(original), `${c.name}: the original, byte for byte`);
  }
  const pgp = await decryptTunnel(readTunnel(await encryptTunnel('pgp-mime', readTunnel(original), alpha, aeadPeer(beta))), beta, peer(alpha));
  t.same({ cipher: pgp.cipher, integrity: pgp.integrity }, { cipher: 'openpgp-seipd', integrity: true }, 'PGP/MIME is unchanged by the capability');
});

t.test('EFAIL: the first block of CBC content can be rewritten without the key; of GCM content it cannot', async (t) => {
  // The inner entity starts with a known 16 octets; XORing the IV changes them at will (CBC malleability).
  const known = 'Content-Type: ap';
  const chosen = 'Content-Type: te';

  const cbc = split(await encryptTunnel('smime', readTunnel(original), alpha, peer(beta), { now: NOW }));
  const iv = octets(parseEnvelope(cbc.der).contentAlgorithm.params, 'IV');
  xorAt(cbc.der, cbc.der.indexOf(iv), known, chosen);
  const rewritten = await decryptTunnel(readTunnel(join(cbc.head, cbc.der)), beta, peer(alpha), { now: NOW });
  t.ok(rewritten.inner.subarray(0, 16).equals(Buffer.from(chosen)), 'CBC: the attacker chose the first block');
  t.same({ integrity: rewritten.integrity, signature: rewritten.signature }, { integrity: false, signature: 'absent' },
    'CBC: reported without integrity and without a signature, for the inbound policy to refuse');

  const gcm = split(await encryptTunnel('smime', readTunnel(original), alpha, aeadPeer(beta), { now: NOW }));
  const env = parseEnvelope(gcm.der);
  xorAt(gcm.der, gcm.der.indexOf(env.encrypted.subarray(0, 32)), known, chosen); // GCM is CTR: the same XOR would work without the tag
  await rejectsCode(t, decryptTunnel(readTunnel(join(gcm.head, gcm.der)), beta, peer(alpha), { now: NOW }), 'TUNNEL_DECRYPT_FAILED', 'GCM: the tag does not match');
  const nonce = octets(items(env.contentAlgorithm.params, 'GCMParameters')[0], 'nonce');
  const again = split(await encryptTunnel('smime', readTunnel(original), alpha, aeadPeer(beta), { now: NOW }));
  t.not(parseEnvelope(again.der).encrypted.toString('hex'), env.encrypted.toString('hex'), 'a fresh key for every message');
  t.equal(nonce.length, 12, 'a 12-octet nonce (RFC 5084 §3.2)');
});

t.test('no padding oracle: changed CBC content fails with one error, whether its padding holds or not', async (t) => {
  const entity = (body: string) => Buffer.from(`Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}\r\n`);
  const cert = beta.keys.smime!.chain[0]!;

  // Good padding, content that is not a SignedData (what a changed block before the last gives).
  const unreadable = tunnelMessage(await sealEnvelope(entity('bm90IERFUg=='), cert), 'enveloped-data');
  // Bad padding: the last ciphertext block changed.
  const sealed = split(await encryptTunnel('smime', readTunnel(original), alpha, peer(beta), { now: NOW }));
  const enc = parseEnvelope(sealed.der).encrypted;
  const last = sealed.der.indexOf(enc.subarray(enc.length - 16));
  for (let i = 0; i < 16; i++) sealed.der[last + i] ^= 0x5a;
  const badPadding = join(sealed.head, sealed.der);

  const a = await codeOf(decryptTunnel(readTunnel(unreadable), beta, peer(alpha)));
  const b = await codeOf(decryptTunnel(readTunnel(badPadding), beta, peer(alpha)));
  t.equal(a.code, 'TUNNEL_DECRYPT_FAILED', 'unreadable content');
  t.same(a, b, 'the same code and text for both');

  // Content that still reads, but was rewritten (the EFAIL first block): a result, not an error.
  // The inbound policy refuses it with the gateway's one reply (test/gateway/authenticity.test.ts).
  const rewritten = split(await encryptTunnel('smime', readTunnel(original), alpha, peer(beta), { now: NOW }));
  const iv = octets(parseEnvelope(rewritten.der).contentAlgorithm.params, 'IV');
  xorAt(rewritten.der, rewritten.der.indexOf(iv), 'Content-Type: ap', 'Content-Type: te');
  const r = await decryptTunnel(readTunnel(join(rewritten.head, rewritten.der)), beta, peer(alpha));
  t.same({ integrity: r.integrity, signature: r.signature }, { integrity: false, signature: 'absent' });

  // With AEAD nothing is read before the tag holds: content that does not parse is the sender's fault and says so.
  const aead = tunnelMessage(sealAuthEnvelope(entity('bm90IERFUg=='), cert), 'authEnveloped-data');
  await rejectsCode(t, decryptTunnel(readTunnel(aead), beta, peer(alpha)), 'TUNNEL_MALFORMED', 'AEAD: authentic but malformed content keeps its code');
});
