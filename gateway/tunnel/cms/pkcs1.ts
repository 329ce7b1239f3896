/**
 * RSAES-PKCS1-v1_5 key transport for received CMS (RFC 8017 §7.2.2), with implicit rejection.
 *
 * Node 20 refuses `privateDecrypt` with RSA_PKCS1_PADDING (CVE-2023-46809, the Marvin attack:
 * the time the unpadding takes, or whether it errs, tells an attacker if the padding was valid,
 * which is a Bleichenbacher oracle). We therefore do the raw RSA operation (RSA_NO_PADDING;
 * OpenSSL blinds it) and the unpadding here:
 *
 * - the content-encryption key length L is known from the content-encryption algorithm, so a
 *   valid encoded message is fixed: 0x00 0x02 PS(k-L-3 non-zero octets) 0x00 M(L octets);
 *   every check is at a fixed, public position, so no index depends on the secret;
 * - the checks are folded into one mask without branches, and the result is selected
 *   byte by byte between M and a synthetic key;
 * - implicit rejection (draft-irtf-cfrg-rsa-guidance §7.2, as OpenSSL 3.2 does): when the
 *   padding is bad the function returns a pseudo-random key of length L, derived with HMAC from
 *   a key-derivation key (a hash of the private key) and the ciphertext. It is deterministic, so
 *   repeating a query gives the same answer, and the caller fails later, at the content
 *   decryption, exactly as with a wrong key: an attacker learns nothing about the padding.
 *
 * JavaScript gives no hard constant-time guarantee; this is the branch-free best effort.
 */
import { constants, createHash, createHmac, privateDecrypt, type KeyObject } from 'node:crypto';
import { MailmeshError } from '../../errors.js';

/** 1 when a === b, else 0, for octets (no branch). */
function eqByte(a: number, b: number): number {
  return (((a ^ b) - 1) >>> 31) & 1;
}

/**
 * RFC 8017 §7.2.2 step 3 for a message of exactly `length` octets: returns M when `em` is
 * 0x00 || 0x02 || PS || 0x00 || M with |PS| ≥ 8 and no zero in PS, else `synthetic`.
 */
export function decodePkcs1v15(em: Uint8Array, length: number, synthetic: Uint8Array): Uint8Array {
  const k = em.length;
  const sep = k - length - 1;
  // Public parameters only: RFC 8017 §7.2.1 needs |PS| = k - mLen - 3 ≥ 8.
  if (length < 1 || sep < 10 || synthetic.length !== length) throw new MailmeshError('TUNNEL_UNSUPPORTED', `key length ${length} for a ${k}-octet modulus`);
  let good = eqByte(em[0]!, 0x00) & eqByte(em[1]!, 0x02) & eqByte(em[sep]!, 0x00);
  for (let i = 2; i < sep; i++) good &= 1 - eqByte(em[i]!, 0x00);
  const mask = -good & 0xff;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (em[sep + 1 + i]! & mask) | (synthetic[i]! & ~mask & 0xff);
  return out;
}

/** The key-derivation key of implicit rejection: a hash of the private key, never output. */
export function rejectionKdk(key: KeyObject): Buffer {
  return createHash('sha256').update('mailmesh implicit rejection kdk\0').update(key.export({ type: 'pkcs8', format: 'der' })).digest();
}

/** A pseudo-random key of `length` octets, HMAC-SHA256(kdk, label || length || i || ciphertext) in counter mode. */
export function syntheticKey(kdk: Uint8Array, ciphertext: Uint8Array, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < length; i++) {
    const ctr = Buffer.alloc(8);
    ctr.writeUInt32BE(length, 0);
    ctr.writeUInt32BE(i, 4);
    blocks.push(createHmac('sha256', kdk).update('mailmesh pkcs1 synthetic key\0').update(ctr).update(ciphertext).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** RFC 8017 §7.2.2 with implicit rejection: the `length`-octet key in `ciphertext`, or a synthetic one. */
export function rsaPkcs1v15DecryptKey(key: KeyObject, ciphertext: Uint8Array, length: number): Uint8Array {
  const k = ((key.asymmetricKeyDetails?.modulusLength ?? 0) + 7) >> 3;
  // RFC 8017 §7.2.2 step 1: the ciphertext is k octets (leading zeros may have been dropped).
  if (ciphertext.length > k || k === 0) throw new MailmeshError('TUNNEL_DECRYPT_FAILED', 'RSA ciphertext longer than the modulus');
  const c = Buffer.alloc(k);
  c.set(ciphertext, k - ciphertext.length);
  let em: Buffer;
  try {
    em = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, c);
  } catch (e) {
    // Only c ≥ n fails here: a public property of the ciphertext.
    throw new MailmeshError('TUNNEL_DECRYPT_FAILED', 'RSA ciphertext out of range', { cause: e });
  }
  return decodePkcs1v15(em, length, syntheticKey(rejectionKdk(key), c, length));
}
