import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { parseAddress, type Address, type Domain } from './domain.js';

/**
 * OpenPGP Web Key Directory (draft-koch-openpgp-webkey-service), protocol-neutral: the
 * hashed local part, the two lookup URLs, and the key a WKD answer carries.
 */

// draft-koch-openpgp-webkey-service §3.1 (after RFC 6189 §5.1.6): z-base-32 alphabet.
const ZBASE32 = 'ybndrfg8ejkmcpqxot1uwisza345h769';

/** z-base-32: 5-bit groups, most significant bit first; a partial last group is padded with zero bits. */
export function zBase32(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += ZBASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ZBASE32[(acc << (5 - bits)) & 31];
  return out;
}

/** A WKD hash: 32 z-base-32 characters. */
export const WKD_HASH = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{32}$/;

/**
 * draft-koch-openpgp-webkey-service §3.1: the local part with upper-case ASCII letters mapped to
 * lower case (and nothing else changed), hashed with SHA-1, encoded in z-base-32.
 */
export function wkdHash(local: string): string {
  const lowered = local.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return zBase32(createHash('sha1').update(lowered, 'utf8').digest());
}

/**
 * draft-koch-openpgp-webkey-service §3.1: the advanced URL (host `openpgpkey.<domain>`, the domain
 * repeated in the path) and the direct URL (the domain itself); `l=` carries the unhashed local part.
 */
export function wkdUrls(a: Address): { advanced: string; direct: string } {
  const tail = `hu/${wkdHash(a.local)}?l=${encodeURIComponent(a.local)}`;
  return {
    advanced: `https://openpgpkey.${a.domain}/.well-known/openpgpkey/${a.domain}/${tail}`,
    direct: `https://${a.domain}/.well-known/openpgpkey/${tail}`,
  };
}

/** True when a user ID's mail address lies in `domain` and its local part hashes to `hash`. */
function userMatches(user: openpgp.PublicKey['users'][number], domain: Domain, hash: string): boolean {
  const email = user.userID?.email;
  if (!email) return false;
  try {
    const a = parseAddress(email);
    return a.domain === domain && wkdHash(a.local) === hash;
  } catch {
    return false;
  }
}

/**
 * The WKD answer for `<hash>` in `domain`: the binary transferable public key (RFC 4880 §11.1)
 * reduced to the user IDs whose address matches (draft §3.1, §3.2: the key must carry a user ID with the
 * requested address; gpg keeps only that one, and the others would reveal more addresses), or
 * undefined when no user ID matches.
 */
export function wkdKey(key: openpgp.PublicKey, domain: Domain, hash: string): Uint8Array | undefined {
  const copy = new openpgp.PublicKey(key.toPacketList());
  copy.users = copy.users.filter((u) => userMatches(u, domain, hash));
  return copy.users.length ? copy.write() : undefined;
}
