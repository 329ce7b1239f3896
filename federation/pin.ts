import { MailmeshError } from '../directory/errors.js';

/**
 * The `_mailmesh` TXT pin (docs/architecture.md "Publication"; the format directory/dane.ts pinText
 * writes): `v=mm1; pgp=<fingerprint>; smime=<sha256 of cert DER>; dir=<directory URL>; caps=<names>`.
 */
export interface Pin {
  pgp?: string;
  smime?: string;
  dir?: string;
  /** Capabilities of the record (directory/record.ts SMIME_AEAD), comma-separated in the TXT. */
  caps?: string[];
}

/** Parses one TXT string; a string that is not `v=mm1` is not ours (undefined), a broken mm1 string is SIGNED_RECORD_MALFORMED. */
export function parsePin(text: string): Pin | undefined {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    const t = part.trim();
    if (!t) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) return fields.get('v') === 'mm1' ? bad(`field ${JSON.stringify(t)}`) : undefined;
    const k = t.slice(0, eq).trim().toLowerCase();
    if (fields.size === 0 && (k !== 'v' || t.slice(eq + 1).trim() !== 'mm1')) return undefined;
    if (fields.has(k)) bad(`field ${k} twice`);
    fields.set(k, t.slice(eq + 1).trim());
  }
  if (fields.get('v') !== 'mm1') return undefined;
  const pin: Pin = {};
  const pgp = fields.get('pgp');
  if (pgp !== undefined) {
    // RFC 4880 §12.2: a v4 fingerprint is 20 octets (40 hex digits).
    if (!/^[0-9a-f]{40}$/i.test(pgp)) bad(`pgp=${pgp} is not a v4 fingerprint`);
    pin.pgp = pgp.toUpperCase();
  }
  const smime = fields.get('smime');
  if (smime !== undefined) {
    if (!/^[0-9a-f]{64}$/i.test(smime)) bad(`smime=${smime} is not a SHA-256`);
    pin.smime = smime.toLowerCase();
  }
  const dir = fields.get('dir');
  if (dir !== undefined) pin.dir = dir;
  const caps = fields.get('caps');
  if (caps !== undefined) {
    pin.caps = caps.split(',').map((c) => c.trim()).filter(Boolean);
    if (pin.caps.length > 32 || !pin.caps.every((c) => /^[a-z0-9-]{1,64}$/i.test(c))) bad(`caps=${caps} is not a list of names`);
  }
  if (!pin.pgp && !pin.smime) bad('the pin names no key');
  return pin;
}

function bad(detail: string): never {
  throw new MailmeshError('SIGNED_RECORD_MALFORMED', `_mailmesh TXT: ${detail}`);
}

/** Does a pin name exactly these keys (each key the pin names must be the one given)? */
export function pinMatches(pin: Pin, keys: { openpgp?: { fingerprint: string }; smime?: { fingerprint: string } }): boolean {
  if (pin.pgp && pin.pgp !== keys.openpgp?.fingerprint) return false;
  if (pin.smime && pin.smime !== keys.smime?.fingerprint.toLowerCase()) return false;
  return true;
}

/**
 * Does a pin prove control of a signed record's keys (docs/lifecycle.md "Renew")? It names
 * exactly these keys, or it names the record's OpenPGP key: that key signs the record, which
 * carries the S/MIME chain, so a pin whose smime= still names the leaf before a renewal does not
 * make the record unproven. A pin that names no OpenPGP key must name the leaf itself.
 */
export function pinProves(pin: Pin, keys: { openpgp?: { fingerprint: string }; smime?: { fingerprint: string } }): boolean {
  return pinMatches(pin, keys) || (pin.pgp !== undefined && pin.pgp === keys.openpgp?.fingerprint);
}
