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

  /** A member domain's record with its parsed key: DOMAIN_NOT_FOUND, or NOT_FOUND when it has no OpenPGP key. */
  async ofDomain(domain: string): Promise<PublishedKey> {
    const record = await this.#directory.getRecord(domain);
    if (!record.keys.openpgp) throw new MailmeshError('NOT_FOUND', `${record.domain} publishes no OpenPGP key`);
    return { record, key: await this.parse(record.keys.openpgp) };
  }

  /** Keys matching a query, in serial order, at most MAX_MATCHES. */
  async find(q: KeyQuery): Promise<PublishedKey[]> {
    if ('address' in q) {
      const a = parseAddress(q.address);
      const wanted = `${a.local.toLowerCase()}@${a.domain}`;
      const record = await this.#directory.findRecord(a.domain);
      if (!record?.keys.openpgp) return [];
      const key = await this.parse(record.keys.openpgp);
      return emails(key).includes(wanted) ? [{ record, key }] : [];
    }
    const all = await this.#published();
    let records: DomainRecord[];
    if ('fingerprint' in q) {
      const fpr = q.fingerprint.replace(/\s+/g, '').toUpperCase();
      records = all.filter((r) => r.keys.openpgp?.fingerprint === fpr || r.keys.smime?.fingerprint.toUpperCase() === fpr).slice(0, 1);
    } else if ('keyId' in q) {
      const id = q.keyId.toUpperCase();
      records = all.filter((r) => r.keys.openpgp?.keyId === id);
    } else {
      const text = q.text.toLowerCase();
      records = all.filter((r) => r.keys.openpgp?.userIds.some((u) => (q.exact ? u.toLowerCase() === text : u.toLowerCase().includes(text))));
    }
    const out: PublishedKey[] = [];
    for (const record of records.slice(0, MAX_MATCHES)) {
      if (record.keys.openpgp) out.push({ record, key: await this.parse(record.keys.openpgp) });
    }
    return out;
  }
}

/** The mail addresses of a key's user IDs, lower-cased. */
function emails(key: openpgp.PublicKey): string[] {
  return key.users.map((u) => u.userID?.email?.toLowerCase()).filter((e): e is string => !!e);
}

/** RFC 4880 §6.2: one armored PUBLIC KEY BLOCK holding the keys one after another (§11.1 transferable keys). */
export function armorKeys(keys: openpgp.PublicKey[]): string {
  return openpgp.armor(openpgp.enums.armor.publicKey, Buffer.concat(keys.map((k) => k.write())));
}
