import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { MailmeshError } from '../../directory/errors.js';

/** RFC 7914 scrypt parameters; N = 2^15 takes ~0.1 s and 32 MiB here. */
export const SCRYPT = { N: 1 << 15, r: 8, p: 1 };

function derive(password: string, salt: Buffer, o: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: o.N, r: o.r, p: o.p, maxmem: 256 * o.N * o.r };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, 32, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$N$r$p$salt$hash` (base64 parts): the parameters travel with the hash, so they can grow later. */
export async function hashPassword(password: string, o = SCRYPT): Promise<string> {
  const salt = randomBytes(16);
  return ['scrypt', o.N, o.r, o.p, salt.toString('base64'), (await derive(password, salt, o)).toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64');
  const got = await derive(password, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p) });
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * The strength rules: at least 10 characters with three of four classes (lower, upper, digit,
 * other), or at least 16 of any kind; at most 200; not containing the address's local part.
 */
export function checkPassword(password: string, address: string): void {
  const weak = (why: string) => new MailmeshError('WEBMAIL_WEAK_PASSWORD', why);
  const chars = [...password];
  if (chars.length > 200) throw weak('longer than 200 characters');
  const classes = [/\p{Ll}/u, /\p{Lu}/u, /\p{Nd}/u, /[^\p{Ll}\p{Lu}\p{Nd}]/u].filter((c) => c.test(password)).length;
  if (chars.length < 10 || (chars.length < 16 && classes < 3)) throw weak('too short or too simple');
  const local = address.split('@')[0]!.toLowerCase();
  if (local.length >= 3 && password.toLowerCase().includes(local)) throw weak('contains the address');
}
