import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { MailmeshError } from '../errors.js';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/**
 * RFC 7914 scrypt parameters for new hashes: the OWASP Password Storage Cheat Sheet's
 * recommendation (N = 2^17, r = 8, p = 1): 128 · N · r = 128 MiB of memory per hash.
 */
export const SCRYPT: ScryptParams = { N: 1 << 17, r: 8, p: 1 };

/** The parameters of hashes written before (verified, then rehashed at the next login). */
export const SCRYPT_PREVIOUS: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

/**
 * What a stored hash may ask for: outside these bounds it is refused (WEBMAIL_HASH_UNSUPPORTED)
 * before any work, so a hash with N = 2^30 written into the store cannot tie up a server.
 */
export const SCRYPT_LIMITS = { minLog2N: 14, maxLog2N: 18, maxR: 16, maxP: 4, maxMemBytes: 256 * 1024 * 1024, maxWork: 4 * SCRYPT.N * SCRYPT.r * SCRYPT.p };

/** RFC 7914 §2: N a power of two above 1, r and p positive integers; and within SCRYPT_LIMITS. */
export function checkParams(o: ScryptParams): ScryptParams {
  const { N, r, p } = o;
  const L = SCRYPT_LIMITS;
  const ok =
    Number.isSafeInteger(N) && Number.isSafeInteger(r) && Number.isSafeInteger(p) && r >= 1 && r <= L.maxR && p >= 1 && p <= L.maxP &&
    N >= 2 ** L.minLog2N && N <= 2 ** L.maxLog2N && (N & (N - 1)) === 0 && 128 * N * r <= L.maxMemBytes && N * r * p <= L.maxWork;
  if (!ok) throw new MailmeshError('WEBMAIL_HASH_UNSUPPORTED', `scrypt N=${N} r=${r} p=${p} is outside the accepted range`);
  return o;
}

function derive(password: string, salt: Buffer, o: ScryptParams): Promise<Buffer> {
  checkParams(o);
  // RFC 7914 §2: scrypt uses 128 · N · r bytes (plus 128 · r · p); maxmem leaves room above that.
  const opts: ScryptOptions = { N: o.N, r: o.r, p: o.p, maxmem: 128 * o.N * o.r + 128 * o.r * o.p + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, 32, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$N$r$p$salt$hash` (base64 parts): the parameters travel with the hash, so they can grow later. */
export async function hashPassword(password: string, o: ScryptParams = SCRYPT): Promise<string> {
  const salt = randomBytes(16);
  return ['scrypt', o.N, o.r, o.p, salt.toString('base64'), (await derive(password, salt, o)).toString('base64')].join('$');
}

const B64 = /^[A-Za-z0-9+/]{16,88}={0,2}$/;

/** A stored hash's parts; a malformed or out-of-range one is WEBMAIL_HASH_UNSUPPORTED. */
function parseHash(stored: string): { params: ScryptParams; salt: Buffer; hash: Buffer } {
  const parts = stored.split('$');
  const [kind, n, r, p, salt, hash] = parts;
  const int = (s: string | undefined) => (s && /^\d{1,10}$/.test(s) ? Number(s) : NaN);
  if (parts.length !== 6 || kind !== 'scrypt' || !B64.test(salt ?? '') || !B64.test(hash ?? '')) throw new MailmeshError('WEBMAIL_HASH_UNSUPPORTED', 'not an scrypt hash');
  const out = { params: checkParams({ N: int(n), r: int(r), p: int(p) }), salt: Buffer.from(salt!, 'base64'), hash: Buffer.from(hash!, 'base64') };
  if (out.hash.length !== 32) throw new MailmeshError('WEBMAIL_HASH_UNSUPPORTED', 'the hash is not 32 bytes');
  return out;
}

/** True when the password matches; a stored hash that cannot be used is WEBMAIL_HASH_UNSUPPORTED (never a hang). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const { params, salt, hash } = parseHash(stored);
  if (password.length > PASSWORD_MAX_UNITS) return false; // never registered: not worth a hash
  const got = await derive(password, salt, params);
  return timingSafeEqual(got, hash);
}

/** A verified hash made with other parameters than `o` is to be replaced at the next login. */
export function needsRehash(stored: string, o: ScryptParams = SCRYPT): boolean {
  const { params } = parseHash(stored);
  return params.N !== o.N || params.r !== o.r || params.p !== o.p;
}

/** 200 characters are at most 400 UTF-16 code units. */
const PASSWORD_MAX_UNITS = 400;

/**
 * The strength rules: at least 10 characters with three of four classes (lower, upper, digit,
 * other), or at least 16 of any kind; at most 200; not containing the address's local part.
 */
export function checkPassword(password: string, address: string): void {
  const weak = (why: string) => new MailmeshError('WEBMAIL_WEAK_PASSWORD', why);
  if (password.length > PASSWORD_MAX_UNITS) throw weak('longer than 200 characters'); // before spreading a form field of megabytes
  const chars = [...password];
  if (chars.length > 200) throw weak('longer than 200 characters');
  const classes = [/\p{Ll}/u, /\p{Lu}/u, /\p{Nd}/u, /[^\p{Ll}\p{Lu}\p{Nd}]/u].filter((c) => c.test(password)).length;
  if (chars.length < 10 || (chars.length < 16 && classes < 3)) throw weak('too short or too simple');
  const local = address.split('@')[0]!.toLowerCase();
  if (local.length >= 3 && password.toLowerCase().includes(local)) throw weak('contains the address');
}
