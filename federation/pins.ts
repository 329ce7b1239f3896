import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { MailmeshError } from '../directory/errors.js';
import type { SmimeKeyInfo } from '../directory/record.js';
import type { VerifiedKeys } from '../directory/signed.js';
import { kvGetJson, kvPutJson, type KvDocuments } from '../directory/store/store.js';
import type { KeyTrust } from './trust.js';

/** A key change that was refused: the pinned key stays in use (docs/architecture.md "Federation"). */
export interface PinViolation {
  domain: string;
  /** Which key changed (absent in violations recorded before S/MIME was pinned: the OpenPGP key). */
  key?: 'openpgp' | 'smime' | 'smime-ca';
  pinned: string;
  offered: string;
  /** The source that offered the other key. */
  source: string;
  at: string;
  /** The offered key is one the domain revoked: never accepted, not even by `mailmesh pins accept`. */
  revoked?: boolean;
}

/** Keys a pin moved away from (a roll's switch, a renewal): they still sign validly until `until` (keys.retainDays). */
export interface PreviousKeys {
  keys: VerifiedKeys;
  /** When the pin moved away from them. */
  retired: string;
  until: string;
}

/**
 * What a gateway remembers about a peer between runs (trust on first use, then continuity):
 * the keys last accepted, the announced next key, and the violations seen.
 */
export interface PinEntry {
  keys: VerifiedKeys;
  /** OpenPGP fingerprint announced as `next` by a verified record of the pinned key. */
  next?: string;
  /** Armored next key as announced (so a later record by it can be checked). */
  nextArmored?: string;
  /** S/MIME leaf (SHA-256 of its DER) announced as `next` by a verified record. Absent in pins written before S/MIME was pinned. */
  nextSmime?: string;
  at: string;
  violations: PinViolation[];
  /** The trust of the answer the keys were pinned from (pins written before it was kept lack it: unauthenticated). */
  trust?: KeyTrust;
  /** The whole keys announced as `next` (`next`/`nextSmime` name them; pins written before lack it). */
  nextKeys?: VerifiedKeys;
  /** Keys replaced by a planned change, kept for keys.retainDays; never revoked ones. */
  previous?: PreviousKeys[];
  /**
   * Fingerprints the domain revoked (OpenPGP, upper-case hex; S/MIME leaves, SHA-256 lower-case
   * hex): a source that offers one is refused, whatever it is.
   */
  revoked?: string[];
  /** When a revocation by the domain left this pin without keys (until a new key is pinned). */
  droppedAt?: string;
}

/** Keys as `pgp=<fingerprint> smime=<sha256>` (what the `_mailmesh` TXT says), `-` for none. */
export function keysText(k: VerifiedKeys | undefined): string {
  return [k?.openpgp && `pgp=${k.openpgp.fingerprint}`, k?.smime && `smime=${k.smime.fingerprint}`].filter(Boolean).join(' ') || '-';
}

/** The fingerprints of keys, OpenPGP and S/MIME leaf. */
export function fingerprints(k: VerifiedKeys | undefined): string[] {
  return [k?.openpgp?.fingerprint, k?.smime?.fingerprint].filter((f): f is string => !!f);
}

/**
 * The domain CA of an S/MIME key, the last certificate of a chain longer than the leaf, as a
 * key pin: SHA-256 of its SubjectPublicKeyInfo (RFC 7469 §2.4), so that a CA certificate
 * re-issued for the same key is the same CA.
 */
export function smimeCaPin(s: SmimeKeyInfo | undefined): string | undefined {
  if (!s || s.chain.length < 2) return undefined;
  return createHash('sha256').update(new X509Certificate(s.chain[s.chain.length - 1]!).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/**
 * The S/MIME half of a pin check; it runs once the OpenPGP half accepted the candidate
 * (federation/pincheck.ts). Accepted: no S/MIME key pinned yet (first sighting, and pins from
 * before S/MIME was pinned), a candidate without S/MIME (the pin keeps its certificate), the
 * pinned leaf under the pinned CA, the leaf announced as `next` by a verified record, or any
 * S/MIME key of a verified record when an OpenPGP key is pinned (the record is signed by a key
 * the OpenPGP half accepted against it). Anything else,
 * an unsigned source (SMIMEA) offering another leaf or CA beside the accepted OpenPGP key, is
 * returned as the change refused.
 */
export function smimeChange(pin: PinEntry | undefined, offered: VerifiedKeys, signed: boolean): Pick<PinViolation, 'key' | 'pinned' | 'offered'> | undefined {
  const pinned = pin?.keys.smime;
  const o = offered.smime;
  if (!pinned || !o || (signed && pin.keys.openpgp)) return undefined;
  if (o.fingerprint !== pinned.fingerprint) {
    return o.fingerprint === pin.nextSmime ? undefined : { key: 'smime', pinned: `S/MIME ${pinned.fingerprint}`, offered: `S/MIME ${o.fingerprint}` };
  }
  const [was, now] = [smimeCaPin(pinned), smimeCaPin(o)];
  return was && now && was !== now ? { key: 'smime-ca', pinned: `S/MIME CA key ${was}`, offered: `S/MIME CA key ${now}` } : undefined;
}

/**
 * The keys a pin keeps for an accepted candidate: its keys, except that the pinned S/MIME key
 * stays when the candidate has none, or has the same leaf with less of its chain (SMIMEA holds
 * the leaf only): S/MIME cannot be dropped and re-added as a "first sighting".
 */
export function keysToPin(pin: PinEntry | undefined, offered: VerifiedKeys): VerifiedKeys {
  const pinned = pin?.keys.smime;
  const o = offered.smime;
  const keep = pinned && (!o || (o.fingerprint === pinned.fingerprint && o.chain.length < pinned.chain.length));
  return keep ? { ...offered, smime: pinned } : offered;
}

export interface PinStore {
  get(domain: string): Promise<PinEntry | undefined>;
  put(domain: string, entry: PinEntry): Promise<void>;
  delete(domain: string): Promise<void>;
  /** The domains with a pin, sorted (`mailmesh pins list`). */
  list(): Promise<string[]>;
}

export class MemoryPinStore implements PinStore {
  protected pins = new Map<string, PinEntry>();
  async get(domain: string) {
    return structuredClone(this.pins.get(domain));
  }
  async put(domain: string, entry: PinEntry) {
    this.pins.set(domain, structuredClone(entry));
  }
  async delete(domain: string) {
    this.pins.delete(domain);
  }
  async list() {
    return [...this.pins.keys()].sort();
  }
}

/** The kv key of the list of pinned domains (the store has no key listing). */
const PIN_INDEX = 'pin-index';

/**
 * Pins in the directory's store (the default): on Redis every node of a gateway cluster sees
 * the same pins, so a key change refused on one node is refused on all. A CLI in another process
 * (`mailmesh pins accept|forget`) writes the same keys the running gateway reads.
 */
export class StorePinStore implements PinStore {
  readonly #kv: KvDocuments;
  constructor(kv: KvDocuments) {
    this.#kv = kv;
  }
  get(domain: string): Promise<PinEntry | undefined> {
    return kvGetJson<PinEntry>(this.#kv, `pin:${domain}`);
  }
  async put(domain: string, entry: PinEntry): Promise<void> {
    await kvPutJson(this.#kv, `pin:${domain}`, entry);
    const index = await this.list();
    if (!index.includes(domain)) await kvPutJson(this.#kv, PIN_INDEX, [...index, domain].sort());
  }
  async delete(domain: string): Promise<void> {
    await this.#kv.kvDelete(`pin:${domain}`);
    const index = await this.list();
    if (index.includes(domain)) await kvPutJson(this.#kv, PIN_INDEX, index.filter((d) => d !== domain));
  }
  /** Pins written before the index existed are listed once they are written again. */
  async list(): Promise<string[]> {
    return (await kvGetJson<string[]>(this.#kv, PIN_INDEX)) ?? [];
  }
}

/**
 * Pins in one JSON file (federation.pinsFile), written whole and atomically (write, then rename).
 * Another process may write it too (`mailmesh pins accept|forget` beside a running `serve`): the
 * file is read again whenever it is not the one last read or written (inode, size, mtime), so
 * neither process writes back pins the other changed.
 */
export class FilePinStore extends MemoryPinStore {
  readonly #file: string;
  #seen = '';

  constructor(file: string) {
    super();
    this.#file = file;
    this.#load();
  }

  override async get(domain: string) {
    this.#load();
    return super.get(domain);
  }

  override async list() {
    this.#load();
    return super.list();
  }

  override async put(domain: string, entry: PinEntry) {
    this.#load();
    await super.put(domain, entry);
    this.#save();
  }

  override async delete(domain: string) {
    this.#load();
    await super.delete(domain);
    this.#save();
  }

  #stamp(): string {
    try {
      const s = statSync(this.#file, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw e;
    }
  }

  /** Reads the file when it changed since this process last read or wrote it (absent: no pins). */
  #load(): void {
    const stamp = this.#stamp();
    if (stamp === this.#seen) return;
    this.pins.clear();
    if (stamp) {
      try {
        const data = JSON.parse(readFileSync(this.#file, 'utf8')) as Record<string, PinEntry>;
        for (const [d, e] of Object.entries(data)) this.pins.set(d, e);
      } catch (e) {
        throw new MailmeshError('CONFIG_INVALID', `${this.#file}: not a pin file (${(e as Error).message})`);
      }
    }
    this.#seen = stamp;
  }

  #save(): void {
    mkdirSync(dirname(this.#file), { recursive: true, mode: 0o700 });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.pins), null, 1), { mode: 0o600 });
    renameSync(tmp, this.#file);
    this.#seen = this.#stamp();
  }
}
