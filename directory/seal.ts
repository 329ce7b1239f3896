import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { MailmeshError } from './errors.js';

/**
 * Secrets at rest: AES-256-GCM (NIST SP 800-38D) under the master key.
 * Blob layout: 0x01 | nonce (12) | ciphertext | tag (16). The context string is
 * authenticated as additional data, so a blob cannot be moved to another purpose.
 */
const VERSION = 1;
const NONCE = 12;
const TAG = 16;

export class Sealer {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new MailmeshError('MASTER_KEY_INVALID', `got ${key.length} bytes`);
    this.#key = Buffer.from(key);
  }

  seal(plaintext: Uint8Array, context: string): Buffer {
    const nonce = randomBytes(NONCE);
    const c = createCipheriv('aes-256-gcm', this.#key, nonce);
    c.setAAD(Buffer.from(context));
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return Buffer.concat([Buffer.from([VERSION]), nonce, body, c.getAuthTag()]);
  }

  open(blob: Uint8Array, context: string): Buffer {
    const b = Buffer.from(blob);
    if (b.length < 1 + NONCE + TAG || b[0] !== VERSION) throw new MailmeshError('SEALED_DATA_CORRUPT', context);
    const d = createDecipheriv('aes-256-gcm', this.#key, b.subarray(1, 1 + NONCE));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(b.subarray(b.length - TAG));
    try {
      return Buffer.concat([d.update(b.subarray(1 + NONCE, b.length - TAG)), d.final()]);
    } catch {
      throw new MailmeshError('SEALED_DATA_CORRUPT', context);
    }
  }
}

/** A master key as written in a key file or the environment: 32 bytes in base64 or hex. */
export function decodeMasterKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new MailmeshError('MASTER_KEY_INVALID', `decoded to ${key.length} bytes`);
  return key;
}

/**
 * The master key: from the given value if set, else from the key file, which is
 * created with mode 0600 on first use (docs/architecture.md "Domain keys").
 */
export function loadMasterKey(opts: { value?: string; file: string; create: boolean }): Buffer {
  if (opts.value) return decodeMasterKey(opts.value);
  if (existsSync(opts.file)) return decodeMasterKey(readFileSync(opts.file, 'utf8'));
  if (!opts.create) throw new MailmeshError('MASTER_KEY_INVALID', `no key file at ${opts.file}`);
  const key = randomBytes(32);
  mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
  writeFileSync(opts.file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}

/** What a store keeps to tell a wrong master key from a right one before anything is written. */
export const MASTER_KEY_CHECK_CONTEXT = 'mailmesh master key check';
