import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { MailmeshError } from '../errors.js';
import { Sealer } from '../../directory/seal.js';
import type { MetaStore } from '../../directory/store/store.js';

/**
 * The cluster's WebMail keys: 32-byte AES keys, numbered 1, 2, …, each kept in the store's
 * meta (set once) sealed under the master key. The highest number is current; older ones
 * stay readable so that mail sent before a rotation still opens. Every node of a cluster
 * shares them through the store.
 */
export class WebmailKeys {
  readonly #store: MetaStore;
  readonly #sealer: Sealer;
  readonly #keys = new Map<number, Buffer>();
  #latest = 0;

  private constructor(store: MetaStore, masterKey: Buffer) {
    this.#store = store;
    this.#sealer = new Sealer(masterKey);
  }

  static async open(store: MetaStore, masterKey: Buffer): Promise<WebmailKeys> {
    const k = new WebmailKeys(store, masterKey);
    await k.#refresh();
    if (k.#latest === 0) await k.rotate();
    return k;
  }

  static #name(v: number): string {
    return `webmail-key-${v}`;
  }

  async #load(v: number): Promise<Buffer | undefined> {
    const cached = this.#keys.get(v);
    if (cached) return cached;
    const sealed = await this.#store.getMeta(WebmailKeys.#name(v));
    if (!sealed) return undefined;
    const key = this.#sealer.open(Buffer.from(sealed, 'base64'), WebmailKeys.#name(v));
    this.#keys.set(v, key);
    return key;
  }

  /** Picks up versions other nodes added. */
  async #refresh(): Promise<void> {
    while (await this.#load(this.#latest + 1)) this.#latest++;
  }

  /** Adds the next key version (or adopts the one another node added at the same time); it becomes current. */
  async rotate(): Promise<number> {
    await this.#refresh();
    const v = this.#latest + 1;
    await this.#store.setMetaIfAbsent(WebmailKeys.#name(v), this.#sealer.seal(randomBytes(32), WebmailKeys.#name(v)).toString('base64'));
    await this.#refresh();
    return this.#latest;
  }

  async current(): Promise<{ version: number; key: Buffer }> {
    await this.#refresh();
    return { version: this.#latest, key: (await this.#load(this.#latest))! };
  }

  /** Every version, oldest first, read without creating one: the cluster bundle's copy (cli/cluster.ts). */
  static async readAll(store: MetaStore, masterKey: Buffer): Promise<{ version: number; key: Buffer }[]> {
    const k = new WebmailKeys(store, masterKey);
    await k.#refresh();
    return [...k.#keys].sort(([a], [b]) => a - b).map(([version, key]) => ({ version, key }));
  }

  /**
   * Puts back versions the store lacks (a store rebuilt after a loss: mail sent before opens
   * again) and checks those it holds; a version held with another key is
   * CLUSTER_BUNDLE_MISMATCH, before anything is written. Returns the versions put back.
   */
  static async restore(store: MetaStore, masterKey: Buffer, keys: { version: number; key: Buffer }[]): Promise<number[]> {
    const k = new WebmailKeys(store, masterKey);
    const missing: { version: number; key: Buffer }[] = [];
    for (const w of keys) {
      const held = await k.#load(w.version);
      if (!held) missing.push(w);
      else if (!held.equals(w.key)) throw new MailmeshError('CLUSTER_BUNDLE_MISMATCH', `WebMail key version ${w.version} differs from the store's`);
    }
    for (const w of missing) {
      const name = WebmailKeys.#name(w.version);
      const set = await store.setMetaIfAbsent(name, k.#sealer.seal(w.key, name).toString('base64'));
      if (!k.#sealer.open(Buffer.from(set, 'base64'), name).equals(w.key)) throw new MailmeshError('CLUSTER_BUNDLE_MISMATCH', `WebMail key version ${w.version} was set concurrently with another key`);
    }
    return missing.map((w) => w.version);
  }

  async get(version: number): Promise<Buffer> {
    const key = await this.#load(version);
    if (!key) throw new MailmeshError('WEBMAIL_INVALID', `unknown key version ${version}`);
    return key;
  }
}

/** What a sealed message is bound to; all of it is authenticated. */
export interface Binding {
  recipient: string;
  messageId: string;
  /** Seconds since the epoch. */
  expires: number;
}

/** What the attachment's form posts: the binding in clear, the rest in `data` (base64). */
export interface SealedMessage extends Binding {
  data: string;
}

const VERSION = 1;
const NONCE = 12;
const TAG = 16;
const HEAD = 1 + 4 + NONCE + 32 + TAG + NONCE;

/** NIST SP 800-38D: the additional data is the binding, so none of it can be changed or moved. */
function aad(purpose: 'wrap' | 'body', b: Binding): Buffer {
  return Buffer.from(['mailmesh-webmail-v1', purpose, b.recipient.toLowerCase(), b.messageId, String(b.expires)].join('\0'));
}

function gcm(key: Buffer, nonce: Buffer, ad: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(ad);
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function ungcm(key: Buffer, nonce: Buffer, ad: Buffer, sealed: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(ad);
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
  } catch {
    throw new MailmeshError('WEBMAIL_INVALID', 'authentication failed');
  }
}

/**
 * Encrypts a message for WebMail: a fresh AES-256-GCM message key, wrapped (AES-256-GCM) under
 * the current cluster key. Layout of `data`: 0x01 | key version (uint32 BE) | wrap nonce (12) |
 * wrapped key (32) | wrap tag (16) | nonce (12) | ciphertext | tag (16).
 */
export async function sealMessage(keys: WebmailKeys, message: Buffer, b: Binding, random: (n: number) => Buffer = randomBytes): Promise<SealedMessage> {
  const { version, key } = await keys.current();
  const messageKey = random(32);
  const wrapNonce = random(NONCE);
  const nonce = random(NONCE);
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version);
  const data = Buffer.concat([Buffer.from([VERSION]), v, wrapNonce, gcm(key, wrapNonce, aad('wrap', b), messageKey), nonce, gcm(messageKey, nonce, aad('body', b), message)]);
  return { ...b, data: data.toString('base64') };
}

/** Checks expiry, unwraps and decrypts; anything altered is WEBMAIL_INVALID. */
export async function openMessage(keys: WebmailKeys, s: SealedMessage, now: Date): Promise<Buffer> {
  if (!Number.isSafeInteger(s.expires) || s.expires <= 0) throw new MailmeshError('WEBMAIL_INVALID', 'bad expiry');
  const data = Buffer.from(s.data, 'base64');
  if (data.length < HEAD + TAG || data[0] !== VERSION) throw new MailmeshError('WEBMAIL_INVALID', 'bad layout');
  const key = await keys.get(data.readUInt32BE(1));
  let o = 5;
  const take = (n: number) => data.subarray(o, (o += n));
  const wrapNonce = take(NONCE);
  const messageKey = ungcm(key, wrapNonce, aad('wrap', s), take(32 + TAG));
  const nonce = take(NONCE);
  const plain = ungcm(messageKey, nonce, aad('body', s), data.subarray(o));
  // Checked after authentication, so a forged expiry cannot pass as merely "expired".
  if (s.expires * 1000 <= now.getTime()) throw new MailmeshError('WEBMAIL_EXPIRED', new Date(s.expires * 1000).toISOString());
  return plain;
}
