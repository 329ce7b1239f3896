import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { MailmeshError } from '../directory/errors.js';
import type { VerifiedKeys } from '../directory/signed.js';
import type { Store } from '../directory/store/store.js';

/** A key change that was refused: the pinned key stays in use (DESIGN.md "Federation"). */
export interface PinViolation {
  domain: string;
  pinned: string;
  offered: string;
  /** The source that offered the other key. */
  source: string;
  at: string;
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
  at: string;
  violations: PinViolation[];
}

export interface PinStore {
  get(domain: string): Promise<PinEntry | undefined>;
  put(domain: string, entry: PinEntry): Promise<void>;
  delete(domain: string): Promise<void>;
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
}

/**
 * Pins in the directory's store (the default): on Redis every node of a gateway cluster sees
 * the same pins, so a key change refused on one node is refused on all.
 */
export class StorePinStore implements PinStore {
  readonly #kv: Pick<Store, 'kvGet' | 'kvPut' | 'kvDelete'>;
  constructor(kv: Pick<Store, 'kvGet' | 'kvPut' | 'kvDelete'>) {
    this.#kv = kv;
  }
  async get(domain: string): Promise<PinEntry | undefined> {
    const v = await this.#kv.kvGet(`pin:${domain}`);
    return v === undefined ? undefined : (JSON.parse(v) as PinEntry);
  }
  async put(domain: string, entry: PinEntry): Promise<void> {
    await this.#kv.kvPut(`pin:${domain}`, JSON.stringify(entry));
  }
  async delete(domain: string): Promise<void> {
    await this.#kv.kvDelete(`pin:${domain}`);
  }
}

/** Pins in one JSON file (federation.pinsFile), written whole and atomically (write, then rename). */
export class FilePinStore extends MemoryPinStore {
  readonly #file: string;

  constructor(file: string) {
    super();
    this.#file = file;
    if (!existsSync(file)) return;
    try {
      const data = JSON.parse(readFileSync(file, 'utf8')) as Record<string, PinEntry>;
      for (const [d, e] of Object.entries(data)) this.pins.set(d, e);
    } catch (e) {
      throw new MailmeshError('CONFIG_INVALID', `${file}: not a pin file (${(e as Error).message})`);
    }
  }

  override async put(domain: string, entry: PinEntry) {
    await super.put(domain, entry);
    this.#save();
  }

  override async delete(domain: string) {
    await super.delete(domain);
    this.#save();
  }

  #save(): void {
    mkdirSync(dirname(this.#file), { recursive: true });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.pins), null, 1), { mode: 0o600 });
    renameSync(tmp, this.#file);
  }
}
