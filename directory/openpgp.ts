import * as openpgp from 'openpgp';
import type { Domain } from './domain.js';
import { parseAddress } from './domain.js';
import { MailmeshError } from './errors.js';
import type { OpenPgpKeyInfo } from './record.js';

export type OpenPgpAlgorithm = 'curve25519' | 'rsa3072';

/** The user ID of a domain key (docs/architecture.md "Domain keys"). */
export function domainKeyUserId(domain: Domain): { name: string; email: string } {
  return { name: `${domain} domain key`, email: `domainkey@${domain}` };
}

/**
 * A v4 key (RFC 4880 §5.5.2): Ed25519 primary for certification and signing with a
 * Curve25519 ECDH encryption subkey (RFC 6637; 'curve25519Legacy' in openpgp.js 6),
 * or RSA-3072 for legacy peers.
 */
export async function generateOpenPgpKey(
  domain: Domain,
  opts: { algorithm: OpenPgpAlgorithm; now: Date; validDays: number },
): Promise<{ publicKey: openpgp.PublicKey; privateArmored: string }> {
  const common = {
    userIDs: [domainKeyUserId(domain)],
    date: opts.now,
    keyExpirationTime: opts.validDays * 86400,
    format: 'object' as const,
    config: { v6Keys: false },
  };
  const { privateKey, publicKey } =
    opts.algorithm === 'rsa3072'
      ? await openpgp.generateKey({ ...common, type: 'rsa', rsaBits: 3072 })
      : await openpgp.generateKey({ ...common, type: 'ecc', curve: 'curve25519Legacy' });
  return { publicKey, privateArmored: privateKey.armor() };
}

/** Reads an armored (RFC 4880 §6.2) or binary transferable key; a secret key is reduced to its public part. */
export async function readOpenPgpKey(data: string | Uint8Array): Promise<openpgp.PublicKey> {
  try {
    const text = typeof data === 'string' ? data : null;
    const isArmored = text !== null || Buffer.from(data as Uint8Array).subarray(0, 64).toString('latin1').includes('-----BEGIN PGP');
    const key = isArmored
      ? await openpgp.readKey({ armoredKey: text ?? Buffer.from(data as Uint8Array).toString('utf8') })
      : await openpgp.readKey({ binaryKey: data as Uint8Array });
    return key.isPrivate() ? key.toPublic() : (key as openpgp.PublicKey);
  } catch (e) {
    throw new MailmeshError('KEY_UNREADABLE', e instanceof Error ? e.message : String(e), { cause: e });
  }
}

const WEAK_ALGORITHMS = new Set(['rsaEncryptSign', 'rsaEncrypt', 'rsaSign', 'dsa', 'elgamal']);

/**
 * Refuses a key that a domain must not publish: not bound to the domain by a user ID,
 * revoked, expired, weaker than 2048-bit RSA/DSA/ElGamal, or without an encryption key.
 */
export async function validateOpenPgpKey(key: openpgp.PublicKey, domain: Domain, now: Date): Promise<void> {
  const emails = key.users.map((u) => u.userID?.email).filter((e): e is string => !!e);
  const belongs = emails.some((e) => {
    try {
      return parseAddress(e).domain === domain;
    } catch {
      return false;
    }
  });
  if (!belongs) throw new MailmeshError('KEY_WRONG_DOMAIN', `user IDs ${JSON.stringify(emails)} are not in ${domain}`);
  if (await key.isRevoked(undefined, undefined, now)) throw new MailmeshError('KEY_REVOKED', key.getFingerprint().toUpperCase());
  const expires = await key.getExpirationTime();
  if (expires instanceof Date && expires.getTime() <= now.getTime()) {
    throw new MailmeshError('KEY_EXPIRED', `expired ${expires.toISOString()}`);
  }
  for (const k of [key, ...key.getSubkeys()]) {
    const info = k.getAlgorithmInfo();
    if (WEAK_ALGORITHMS.has(info.algorithm) && (info.bits ?? 0) < 2048) {
      throw new MailmeshError('KEY_TOO_WEAK', `${info.algorithm} ${info.bits} bits`);
    }
  }
  try {
    await key.getEncryptionKey(undefined, now);
  } catch (e) {
    throw new MailmeshError('KEY_NO_ENCRYPTION', e instanceof Error ? e.message : String(e));
  }
}

/** The published description of a key; fingerprint per RFC 4880 §12.2 (v4: SHA-1 of the key packet). */
export async function openPgpKeyInfo(key: openpgp.PublicKey): Promise<OpenPgpKeyInfo> {
  const alg = key.getAlgorithmInfo();
  const expires = await key.getExpirationTime();
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    keyId: key.getKeyID().toHex().toUpperCase(),
    algorithm: alg.curve ? `${alg.algorithm}/${alg.curve}` : `${alg.algorithm}/${alg.bits}`,
    armored: key.armor(),
    created: key.getCreationTime().toISOString(),
    expires: expires instanceof Date ? expires.toISOString() : null,
    userIds: key.getUserIDs(),
  };
}

export type RevocationReason = 'compromised' | 'superseded';

/**
 * The revocation certificate of a key (RFC 4880 §5.2.1 type 0x20, key revocation signature),
 * armored, with a Reason for Revocation subpacket (§5.2.3.23): 2 "key material has been
 * compromised" or 1 "key is superseded".
 */
export async function revocationCertificate(privateArmored: string, reason: RevocationReason, date: Date): Promise<string> {
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: privateArmored });
  } catch (e) {
    throw new MailmeshError('KEY_UNREADABLE', e instanceof Error ? e.message : String(e), { cause: e });
  }
  const flag = reason === 'compromised' ? openpgp.enums.reasonForRevocation.keyCompromised : openpgp.enums.reasonForRevocation.keySuperseded;
  const { publicKey } = await openpgp.revokeKey({ key, reasonForRevocation: { flag, string: `domain key ${reason}` }, date, format: 'object' });
  const cert = await publicKey.getRevocationCertificate(date);
  if (typeof cert !== 'string') throw new MailmeshError('INTERNAL', 'openpgp.js made no revocation certificate');
  return cert;
}

/** Whether a private key can still make a signature at `date` (not expired, not revoked). */
export async function canSign(privateArmored: string, date: Date): Promise<boolean> {
  try {
    const key = await openpgp.readPrivateKey({ armoredKey: privateArmored });
    await key.getSigningKey(undefined, date);
    return true;
  } catch {
    return false;
  }
}
