import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { MailmeshError, type ErrorCode } from '../directory/errors.js';

/**
 * Passphrase-encrypted JSON files (the cluster join bundle, cli/cluster.ts; the backup,
 * cli/backup.ts): a key from the passphrase by scrypt (RFC 7914), the JSON encrypted with
 * AES-256-GCM (NIST SP 800-38D), the header authenticated as additional data.
 */
export interface BundleKind {
  /** The header field that names the kind, with the format version as its value. */
  field: 'mailmeshCluster' | 'mailmeshBackup';
  version: number;
  /** The code for a file that is not such a bundle, and for one that does not decrypt. */
  invalid: ErrorCode;
  decrypt: ErrorCode;
}

// scrypt cost: 2^15 × 8 × 128 B = 32 MiB of memory, a fraction of a second per try.
const KDF = { N: 2 ** 15, r: 8, p: 1 };

interface Sealed {
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  iv: string;
  tag: string;
  data: string;
}

function key(passphrase: string, salt: Buffer): Buffer {
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { ...KDF, maxmem: 256 * KDF.N * KDF.r });
}

/** The header fields, authenticated with the ciphertext (GCM additional data): altering any of them fails decryption. */
function aad(version: unknown, b: Pick<Sealed, 'kdf' | 'cipher' | 'iv'>): Buffer {
  return Buffer.from(JSON.stringify([version, b.kdf.name, b.kdf.N, b.kdf.r, b.kdf.p, b.kdf.salt, b.cipher, b.iv]));
}

/** Encrypts `value` as JSON under the passphrase; versioned JSON text. */
export function sealJson(kind: BundleKind, value: unknown, passphrase: string, rand: (n: number) => Buffer = randomBytes): string {
  if (!passphrase) throw new MailmeshError('CONFIG_INVALID', 'an empty passphrase');
  const salt = rand(16);
  const iv = rand(12);
  const head = { kdf: { name: 'scrypt' as const, ...KDF, salt: salt.toString('base64') }, cipher: 'aes-256-gcm' as const, iv: iv.toString('base64') };
  const c = createCipheriv('aes-256-gcm', key(passphrase, salt), iv);
  c.setAAD(aad(kind.version, head));
  const data = Buffer.concat([c.update(JSON.stringify(value), 'utf8'), c.final()]);
  return JSON.stringify({ [kind.field]: kind.version, ...head, tag: c.getAuthTag().toString('base64'), data: data.toString('base64') }, null, 2) + '\n';
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
export const isB64 = (v: unknown, len?: number): v is string => typeof v === 'string' && B64.test(v) && (len === undefined || Buffer.from(v, 'base64').length === len);

/** Decrypts a bundle of `kind`: `kind.invalid` for anything that is not one, `kind.decrypt` for a wrong passphrase or an altered bundle. */
export function openJson(kind: BundleKind, text: string, passphrase: string): unknown {
  let b: Sealed & Record<string, unknown>;
  try {
    b = JSON.parse(text) as typeof b;
  } catch {
    throw new MailmeshError(kind.invalid, 'not JSON');
  }
  if (!b || typeof b !== 'object') throw new MailmeshError(kind.invalid, 'not a JSON object');
  if (b[kind.field] !== kind.version) throw new MailmeshError(kind.invalid, `unknown version ${JSON.stringify(b[kind.field])}`);
  const k = b.kdf;
  // The cost parameters are bounded so that a crafted bundle cannot make us spend gigabytes.
  if (!k || k.name !== 'scrypt' || k.N !== KDF.N || k.r !== KDF.r || k.p !== KDF.p || !isB64(k.salt, 16)) {
    throw new MailmeshError(kind.invalid, 'unsupported key derivation');
  }
  if (b.cipher !== 'aes-256-gcm' || !isB64(b.iv, 12) || !isB64(b.tag, 16) || !isB64(b.data)) throw new MailmeshError(kind.invalid, 'unsupported cipher or bad fields');
  let plain: string;
  try {
    const d = createDecipheriv('aes-256-gcm', key(passphrase, Buffer.from(k.salt, 'base64')), Buffer.from(b.iv, 'base64'));
    d.setAAD(aad(b[kind.field], b));
    d.setAuthTag(Buffer.from(b.tag, 'base64'));
    plain = Buffer.concat([d.update(Buffer.from(b.data, 'base64')), d.final()]).toString('utf8');
  } catch {
    throw new MailmeshError(kind.decrypt);
  }
  try {
    return JSON.parse(plain) as unknown;
  } catch {
    throw new MailmeshError(kind.invalid, 'the content is not JSON');
  }
}
