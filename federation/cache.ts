import { randomUUID } from 'node:crypto';
import type { Domain } from '../directory/domain.js';
import type { KvDocuments } from '../directory/store/store.js';
import type { Discovered } from './discovered.js';

/** A cached discovery answer; `expires` and `staleUntil` are milliseconds on the Discovery clock, which judges them. */
export interface CacheEntry {
  result: Discovered;
  expires: number;
  staleUntil: number;
}

/** Where Discovery keeps its answers. */
export interface DiscoveryCache {
  get(domain: Domain): Promise<CacheEntry | undefined>;
  /** `lifeMs`: how long the entry is of any use (its TTL plus staleMax); it may be dropped after that. */
  set(domain: Domain, entry: CacheEntry, lifeMs: number): Promise<void>;
  delete(domain: Domain): Promise<void>;
  /** Forgets every domain's answer. */
  clear(): Promise<void>;
}

/** Per process (the default): a single gateway, or stores that are not shared. */
export class MemoryDiscoveryCache implements DiscoveryCache {
  readonly #entries = new Map<Domain, CacheEntry>();
  async get(domain: Domain) {
    return this.#entries.get(domain);
  }
  async set(domain: Domain, entry: CacheEntry) {
    this.#entries.set(domain, entry);
  }
  async delete(domain: Domain) {
    this.#entries.delete(domain);
  }
  async clear() {
    this.#entries.clear();
  }
}

/** The kv key of the cache's generation: a random token, replaced by clear(). */
const GENERATION = 'disc-gen';
const entryKey = (domain: Domain) => `disc:${domain}`;

interface StoredEntry extends CacheEntry {
  /** The generation the entry was written in; it counts only while that is still the current one. */
  gen: string;
}

/**
 * In the store's kv space (on Redis, shared by every node of a cluster): `disc:<domain>` holds
 * the entry as JSON for its life, tagged with the generation (`disc-gen`, absent until the first
 * clear()). clear() writes a new generation, so every older entry reads as absent and runs out.
 * An entry without `provenance.trust` (an older version's) reads as absent too.
 */
export class StoreDiscoveryCache implements DiscoveryCache {
  readonly #kv: KvDocuments;
  constructor(kv: KvDocuments) {
    this.#kv = kv;
  }

  async get(domain: Domain): Promise<CacheEntry | undefined> {
    const [gen, value] = await Promise.all([this.#kv.kvGet(GENERATION), this.#kv.kvGet(entryKey(domain))]);
    if (value === undefined) return undefined;
    const { gen: written, ...entry } = JSON.parse(value) as StoredEntry;
    // An answer written without its key trust (by an older version) is a miss: it is asked again and classified.
    return written === (gen ?? '') && entry.result?.provenance?.trust ? entry : undefined;
  }

  async set(domain: Domain, entry: CacheEntry, lifeMs: number): Promise<void> {
    const gen = (await this.#kv.kvGet(GENERATION)) ?? '';
    const stored: StoredEntry = { ...entry, gen };
    await this.#kv.kvPut(entryKey(domain), JSON.stringify(stored), { ttlSec: Math.max(1, Math.ceil(lifeMs / 1000)) });
  }

  async delete(domain: Domain): Promise<void> {
    await this.#kv.kvDelete(entryKey(domain));
  }

  async clear(): Promise<void> {
    await this.#kv.kvPut(GENERATION, randomUUID());
  }
}
