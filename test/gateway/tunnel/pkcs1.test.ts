import { constants, generateKeyPairSync, publicEncrypt, randomBytes } from 'node:crypto';
import t from 'tap';
import { decodePkcs1v15, rejectionKdk, rsaPkcs1v15DecryptKey, syntheticKey } from '../../../gateway/tunnel/cms/pkcs1.js';
import { throwsCode } from '../../helpers.js';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const K = 256;
const L = 32;

/** RFC 8017 §7.2.1 step 2: EM = 0x00 || 0x02 || PS || 0x00 || M, PS non-zero. */
function encode(m: Buffer, k = K): Buffer {
  const ps = Buffer.alloc(k - m.length - 3);
  for (let i = 0; i < ps.length; i++) ps[i] = 1 + (randomBytes(1)[0]! % 255);
  return Buffer.concat([Buffer.from([0, 2]), ps, Buffer.from([0]), m]);
}

/** Encrypts an arbitrary encoded message with the raw RSA function. */
function rawEncrypt(em: Buffer): Buffer {
  return publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, em);
}

t.test('valid padding gives the key back', async (t) => {
  const cek = randomBytes(L);
  const ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, cek);
  t.same(Buffer.from(rsaPkcs1v15DecryptKey(privateKey, ct, L)), cek, 'OpenSSL-padded');
  const ours = rawEncrypt(encode(cek));
  t.same(Buffer.from(rsaPkcs1v15DecryptKey(privateKey, ours, L)), cek, 'padded by the test');
  // RFC 8017 §7.2.2 step 1 allows for a ciphertext whose leading zero octets were dropped.
  let short: Buffer;
  let m: Buffer;
  do {
    m = randomBytes(L);
    short = rawEncrypt(encode(m));
  } while (short[0] !== 0);
  t.same(Buffer.from(rsaPkcs1v15DecryptKey(privateKey, short.subarray(1), L)), m, 'leading zero octet stripped');
});

const BAD: Array<[string, (m: Buffer) => Buffer]> = [
  ['first octet not 0x00', (m) => Object.assign(encode(m), { 0: 0x01 })],
  ['block type 0x01 (a signature, not encryption)', (m) => Object.assign(encode(m), { 1: 0x01 })],
  ['block type 0x00', (m) => Object.assign(encode(m), { 1: 0x00 })],
  ['a zero octet inside PS', (m) => Object.assign(encode(m), { 40: 0x00 })],
  ['no separator before M', (m) => Object.assign(encode(m), { [K - L - 1]: 0x17 })],
  ['a message of 16 octets, not 32', () => encode(randomBytes(16))],
  ['a message of 48 octets, not 32', () => encode(randomBytes(48))],
  ['PS of 7 octets only', () => encode(randomBytes(K - 10))],
  ['all zero', () => Buffer.alloc(K)],
];

t.test('each kind of bad padding gives a deterministic pseudo-random key of the right length', async (t) => {
  const seen = new Set<string>();
  for (const [name, make] of BAD) {
    const m = randomBytes(L);
    const ct = rawEncrypt(make(m));
    const k1 = Buffer.from(rsaPkcs1v15DecryptKey(privateKey, ct, L));
    const k2 = Buffer.from(rsaPkcs1v15DecryptKey(privateKey, ct, L));
    t.equal(k1.length, L, `${name}: ${L} octets`);
    t.same(k1, k2, `${name}: the same answer for the same ciphertext`);
    t.notSame(k1, m, `${name}: not the embedded message`);
    t.same(k1, syntheticKey(rejectionKdk(privateKey), ct, L), `${name}: the synthetic key`);
    t.notOk(seen.has(k1.toString('hex')), `${name}: differs from the other ciphertexts' keys`);
    seen.add(k1.toString('hex'));
    t.equal(rsaPkcs1v15DecryptKey(privateKey, ct, 16).length, 16, `${name}: length follows the cipher`);
  }
});

t.test('decodePkcs1v15 selects M or the synthetic key', async (t) => {
  const m = randomBytes(L);
  const syn = randomBytes(L);
  t.same(Buffer.from(decodePkcs1v15(encode(m), L, syn)), m);
  for (const [name, make] of BAD) t.same(Buffer.from(decodePkcs1v15(make(m), L, syn)), syn, name);
  throwsCode(t, () => decodePkcs1v15(encode(m), K - 10, randomBytes(K - 10)), 'TUNNEL_UNSUPPORTED', 'a key too long for the modulus');
  throwsCode(t, () => decodePkcs1v15(encode(m), L, randomBytes(L - 1)), 'TUNNEL_UNSUPPORTED', 'a synthetic key of the wrong length');
});

t.test('synthetic keys depend on the private key and the ciphertext only', async (t) => {
  const kdk = rejectionKdk(privateKey);
  t.same(kdk, rejectionKdk(privateKey), 'the KDK is stable');
  t.notSame(kdk, rejectionKdk(other), 'another private key, another KDK');
  const ct = randomBytes(K);
  for (const n of [16, 24, 32, 48, 64]) t.equal(syntheticKey(kdk, ct, n).length, n);
  t.notSame(syntheticKey(kdk, ct, 32), syntheticKey(kdk, Buffer.concat([ct.subarray(0, K - 1), Buffer.from([ct[K - 1]! ^ 1])]), 32), 'one bit of ciphertext changes it');
  t.notSame(syntheticKey(kdk, ct, 16), syntheticKey(kdk, ct, 32).subarray(0, 16), 'the length is bound in');
});

t.test('a ciphertext out of range is refused openly (a public property)', async (t) => {
  throwsCode(t, () => rsaPkcs1v15DecryptKey(privateKey, randomBytes(K + 1), L), 'TUNNEL_DECRYPT_FAILED', 'longer than the modulus');
  throwsCode(t, () => rsaPkcs1v15DecryptKey(privateKey, Buffer.alloc(K, 0xff), L), 'TUNNEL_DECRYPT_FAILED', 'not below the modulus');
});
