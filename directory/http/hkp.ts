import type * as openpgp from 'openpgp';
import { formatAddress, parseAddress } from '../domain.js';
import { MailmeshError } from '../errors.js';
import type { KeyQuery } from './keys.js';

/**
 * HKP (draft-shaw-openpgp-hkp; GnuPG doc/KEYSERVER for the machine-readable index): reading the
 * search argument and writing the index.
 */

const MAX_SEARCH = 256;

/**
 * draft-shaw-openpgp-hkp §3.1.1 `search=`: `0x` + 40 hex digits is a v4 fingerprint, `0x` + 16 a
 * long key ID (the prefix may be left out); short (8-digit) and v3 (32-digit) IDs are refused.
 * `<addr>` — or an address with `exact=on` (§3.2.2) — is a user ID address; anything else is text
 * in a user ID, the whole user ID with `exact=on`.
 */
export function parseHkpSearch(search: string, exact: boolean): KeyQuery {
  const s = search.trim();
  if (s === '' || s.length > MAX_SEARCH) throw new MailmeshError('BAD_REQUEST', `search must be 1–${MAX_SEARCH} characters`);
  const hex = /^(0x)?([0-9a-f]+)$/i.exec(s);
  if (hex) {
    const digits = hex[2]!.toUpperCase();
    if (digits.length === 40) return { fingerprint: digits };
    if (digits.length === 16) return { keyId: digits };
    if (hex[1]) throw new MailmeshError('BAD_REQUEST', 'a key ID is 16 hex digits, a v4 fingerprint 40 (short key IDs are refused)');
  }
  const bracketed = /^<([^<>]+)>$/.exec(s);
  if (bracketed) return { address: formatAddress(parseAddress(bracketed[1]!)) };
  if (exact && s.includes('@')) {
    try {
      return { address: formatAddress(parseAddress(s)) };
    } catch {
      // not an address: an exact user ID
    }
  }
  return { text: s, exact };
}

/** GnuPG doc/KEYSERVER: %-escape what is not printable 7-bit ASCII, and ':' (and '%' itself). */
export function escapeIndexField(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b < 0x20 || b > 0x7e || b === 0x3a || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}

/** Key length for the index: RSA/DSA/ElGamal bits, or the size of the curve's field. */
function keyLength(info: ReturnType<openpgp.PublicKey['getAlgorithmInfo']>): string {
  if (info.bits) return String(info.bits);
  if (!info.curve) return '';
  if (/25519/.test(info.curve)) return '255';
  return /(\d{3})/.exec(info.curve)?.[1] ?? '';
}

const seconds = (d: Date) => String(Math.floor(d.getTime() / 1000));

/**
 * The machine-readable index (draft-shaw-openpgp-hkp §5.2, GnuPG doc/KEYSERVER):
 * `info:1:<count>`, then per key `pub:<fpr>:<algo>:<keylen>:<created>:<expires>:<flags>` and
 * `uid:<escaped uid>:<created>:<expires>:<flags>`, times in seconds since the epoch, flags r/e.
 */
export async function hkpIndex(keys: openpgp.PublicKey[], now: Date): Promise<string> {
  const lines = [`info:1:${keys.length}`];
  for (const key of keys) {
    const expires = await key.getExpirationTime();
    const expiry = expires instanceof Date ? expires : null;
    const flags = ((await key.isRevoked(undefined, undefined, now)) ? 'r' : '') + (expiry && expiry <= now ? 'e' : '');
    lines.push(
      ['pub', key.getFingerprint().toUpperCase(), key.keyPacket.algorithm, keyLength(key.getAlgorithmInfo()),
        seconds(key.getCreationTime()), expiry ? seconds(expiry) : '', flags].join(':'),
    );
    for (const user of key.users) {
      if (!user.userID) continue;
      const created = user.selfCertifications[0]?.created;
      lines.push(['uid', escapeIndexField(user.userID.userID), created ? seconds(created) : '', '', ''].join(':'));
    }
  }
  return lines.join('\n') + '\n';
}
