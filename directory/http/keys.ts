import * as openpgp from 'openpgp';
import type { Directory } from '../directory.js';
import { parseAddress } from '../domain.js';
import { MailmeshError } from '../errors.js';
import { readOpenPgpKey } from '../openpgp.js';
import type { DomainRecord, OpenPgpKeyInfo } from '../record.js';

/** What HKP and VKS look keys up by. */
export type KeyQuery =
  | { fingerprint: string }
  | { keyId: string }
  /** A user ID's mail address, compared without regard to ASCII case. */
  | { address: string }
  /** Text in a user ID (case-insensitive); `exact` asks for the whole user ID. */
  | { text: string; exact: boolean };

export interface PublishedKey {
  record: DomainRecord;
  key: openpgp.PublicKey;
}

/** At most this many keys answer one search (HKP index/get). */
export const MAX_MATCHES = 100;
const CACHE_SIZE = 1024;

/**
 * The OpenPGP keys the directory publishes, parsed once and cached by their armored text
 * (a changed key is a new cache entry), with the searches the key-server protocols need.
 * Searches other than by address scan the published records, read once and again after the
 * directory's next 'change' (its own writes and, on a shared store, every node's).
 */
export class PublishedKeys {
  readonly #directory: Directory;
  readonly #cache = new Map<string, Promise<openpgp.PublicKey>>();
  #records?: Promise<DomainRecord[]>;
  readonly #forget = () => (this.#records = undefined);

  constructor(directory: Directory) {
    this.#directory = directory;
    directory.on('change', this.#forget);
  }

  /** Stops following the directory (when the HTTP face closes). */
  close(): void {
    this.#directory.off('change', this.#forget);
  }

  #published(): Promise<DomainRecord[]> {
    if (!this.#records) {
      const p = this.#directory.listDomains();
      p.catch(() => this.#records === p && this.#forget()); // a failed read is not kept
      this.#records = p;
    }
    return this.#records;
  }

  parse(info: OpenPgpKeyInfo): Promise<openpgp.PublicKey> {
    let p = this.#cache.get(info.armored);
    if (!p) {
      if (this.#cache.size >= CACHE_SIZE) this.#cache.clear();
      p = readOpenPgpKey(info.armored);
      this.#cache.set(info.armored, p);
      p.catch(() => this.#cache.delete(info.armored));
    }
    return p;
  }

  /**
   * A member domain's record with its parsed key and, during a roll, its announced next key
   * (docs/lifecycle.md "Roll"): DOMAIN_NOT_FOUND, or NOT_FOUND when it has no OpenPGP key.
   */
  async ofDomain(domain: string): Promise<PublishedKey & { next?: openpgp.PublicKey }> {
    const record = await this.#directory.getRecord(domain);
    if (!record.keys.openpgp) throw new MailmeshError('NOT_FOUND', `${record.domain} publishes no OpenPGP key`);
    const next = record.next?.openpgp;
    return { record, key: await this.parse(record.keys.openpgp), ...(next && { next: await this.parse(next) }) };
  }

  /**
   * Keys matching a query, in serial order, at most MAX_MATCHES; a record's announced next key
   * is a key of its own here, after the current one (by address and text both, by fingerprint or
   * key ID the one asked for).
   */
  async find(q: KeyQuery): Promise<PublishedKey[]> {
    let candidates: { record: DomainRecord; info: OpenPgpKeyInfo; smime?: string }[];
    if ('address' in q) {
      const a = parseAddress(q.address);
      const wanted = `${a.local.toLowerCase()}@${a.domain}`;
      const record = await this.#directory.findRecord(a.domain);
      const out: PublishedKey[] = [];
      for (const { info } of record ? keySets(record) : []) {
        const key = await this.parse(info);
        if (emails(key).includes(wanted)) out.push({ record: record!, key });
      }
      return out;
    }
    const all = (await this.#published()).flatMap((record) => keySets(record).map((k) => ({ record, ...k })));
    if ('fingerprint' in q) {
      const fpr = q.fingerprint.replace(/\s+/g, '').toUpperCase();
      candidates = all.filter((c) => c.info.fingerprint === fpr || c.smime?.toUpperCase() === fpr).slice(0, 1);
    } else if ('keyId' in q) {
      const id = q.keyId.toUpperCase();
      candidates = all.filter((c) => c.info.keyId === id);
    } else {
      const text = q.text.toLowerCase();
      candidates = all.filter((c) => c.info.userIds.some((u) => (q.exact ? u.toLowerCase() === text : u.toLowerCase().includes(text))));
    }
    const out: PublishedKey[] = [];
    for (const c of candidates.slice(0, MAX_MATCHES)) out.push({ record: c.record, key: await this.parse(c.info) });
    return out;
  }
}

/** A record's OpenPGP keys, current first, then the announced next one, each with the S/MIME fingerprint beside it. */
function keySets(record: DomainRecord): { info: OpenPgpKeyInfo; smime?: string }[] {
  return [record.keys, record.next]
    .filter((k): k is DomainRecord['keys'] & { openpgp: OpenPgpKeyInfo } => !!k?.openpgp)
    .map((k) => ({ info: k.openpgp, smime: k.smime?.fingerprint }));
}

/** The mail addresses of a key's user IDs, lower-cased. */
function emails(key: openpgp.PublicKey): string[] {
  return key.users.map((u) => u.userID?.email?.toLowerCase()).filter((e): e is string => !!e);
}

/**
 * RFC 4880 §6.2: one armored PUBLIC KEY BLOCK holding the keys one after another (§11.1
 * transferable keys), with the CRC-24 checksum line (§6.1). openpgp.js 6 leaves the checksum out
 * unless asked, and GnuPG (2.2.40 here) then fails to read a block whose base64 ends without '='
 * padding (dev.gnupg.org/T7071): a third of all keys. RFC 9580 §6.1 keeps the footer for such
 * interoperability and forbids it only for v6 keys.
 */
export function armorKeys(keys: openpgp.PublicKey[]): string {
  const checksum = keys.every((k) => k.keyPacket.version !== 6);
  return openpgp.armor(openpgp.enums.armor.publicKey, Buffer.concat(keys.map((k) => k.write())), undefined, undefined, undefined, checksum);
}
