import type { Domain } from '../domain.js';
import type { DomainRecord, RecordDraft } from '../record.js';
import type { HashReader, StoredHash } from '../tlog/merkle.js';
import { appendEntry, hashKey, logDump, missingHash, restoreLogEntry, type LogBackend } from './log.js';
import { assertSerial, decodeRecord, encodeDraft, type KvPutOptions, type PutOptions, type Store, type StoreEntry } from './store.js';

/** For tests and throw-away runs: everything in this process, gone when it ends. */
export class MemoryStore implements Store, LogBackend {
  readonly kind = 'memory' as const;
  #records = new Map<Domain, { json: string; serial: number; status: string }>();
  #secrets = new Map<Domain, Buffer>();
  #meta = new Map<string, string>();
  #kv = new Map<string, { value: string; expires: number }>();
  #serial = 0;
  #leases = new Map<string, { owner: string; expires: number }>();
  /** The transparency log: entries by index, hashes by `<level>/<index>`, indexes by leaf hash (hex). */
  #log: Buffer[] = [];
  #logHashes = new Map<string, Buffer>();
  #logLeaves = new Map<string, number>();
  readonly #now: () => number;

  /** `clock` (milliseconds) decides when leases and kv entries expire. */
  constructor(opts: { clock?: () => number } = {}) {
    this.#now = opts.clock ?? Date.now;
  }

  async getRecord(domain: Domain): Promise<DomainRecord | undefined> {
    const r = this.#records.get(domain);
    return r && decodeRecord(r.json, r.serial);
  }

  async putRecord(draft: RecordDraft, opts: PutOptions = {}): Promise<DomainRecord> {
    assertSerial(draft.domain, this.#records.get(draft.domain), opts.ifSerial);
    const json = encodeDraft(draft);
    const serial = ++this.#serial;
    this.#records.set(draft.domain, { json, serial, status: draft.status });
    if (opts.secrets) this.#secrets.set(draft.domain, Buffer.from(opts.secrets));
    else if (opts.secrets === null) this.#secrets.delete(draft.domain);
    return decodeRecord(json, serial);
  }

  async getSecrets(domain: Domain): Promise<Buffer | undefined> {
    const s = this.#secrets.get(domain);
    return s && Buffer.from(s);
  }

  async listSince(since: number, limit: number): Promise<DomainRecord[]> {
    return [...this.#records.values()]
      .filter((r) => r.serial > since)
      .sort((a, b) => a.serial - b.serial)
      .slice(0, limit)
      .map((r) => decodeRecord(r.json, r.serial));
  }

  async serial(): Promise<number> {
    return this.#serial;
  }

  async getMeta(name: string): Promise<string | undefined> {
    return this.#meta.get(name);
  }

  async setMetaIfAbsent(name: string, value: string): Promise<string> {
    if (!this.#meta.has(name)) this.#meta.set(name, value);
    return this.#meta.get(name)!;
  }

  async kvGet(key: string): Promise<string | undefined> {
    const e = this.#kv.get(key);
    if (e && e.expires <= this.#now()) this.#kv.delete(key);
    return e && e.expires > this.#now() ? e.value : undefined;
  }

  async kvPut(key: string, value: string, opts: KvPutOptions = {}): Promise<boolean> {
    if (opts.ifAbsent && (await this.kvGet(key)) !== undefined) return false;
    this.#kv.set(key, { value, expires: opts.ttlSec ? this.#now() + opts.ttlSec * 1000 : Infinity });
    return true;
  }

  async kvDelete(key: string): Promise<void> {
    this.#kv.delete(key);
  }

  async kvIncr(key: string, ttlMs: number, opts: { slide?: boolean } = {}): Promise<{ count: number; ttlMs: number }> {
    const now = this.#now();
    const e = this.#kv.get(key);
    const live = e && e.expires > now && Number.isSafeInteger(Number(e.value)) ? e : undefined;
    const count = live ? Number(live.value) + 1 : 1;
    const expires = live && !opts.slide && live.expires !== Infinity ? live.expires : now + ttlMs;
    this.#kv.set(key, { value: String(count), expires });
    return { count, ttlMs: expires - now };
  }

  async acquireLease(name: string, owner: string, ttlSec: number): Promise<boolean> {
    const l = this.#leases.get(name);
    if (l && l.owner !== owner && l.expires > this.#now()) return false;
    this.#leases.set(name, { owner, expires: this.#now() + ttlSec * 1000 });
    return true;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    if (this.#leases.get(name)?.owner === owner) this.#leases.delete(name);
  }

  async *entries(): AsyncIterable<StoreEntry> {
    for (const [domain, r] of this.#records) {
      const secrets = this.#secrets.get(domain);
      yield { kind: 'record', record: decodeRecord(r.json, r.serial), ...(secrets && { secrets: secrets.toString('base64') }) };
    }
    for (const [name, value] of this.#meta) yield { kind: 'meta', name, value };
    for (const [key, e] of this.#kv) {
      if (e.expires > this.#now()) yield { kind: 'kv', key, value: e.value, ...(e.expires !== Infinity && { expiresAt: e.expires }) };
    }
    yield* logDump(this);
  }

  async restoreEntry(e: StoreEntry): Promise<void> {
    if (e.kind === 'log') await restoreLogEntry(this, e);
    else if (e.kind === 'meta') this.#meta.set(e.name, e.value);
    else if (e.kind === 'kv') this.#kv.set(e.key, { value: e.value, expires: e.expiresAt ?? Infinity });
    else {
      const r = e.record;
      this.#records.set(r.domain, { json: encodeDraft(r), serial: r.serial, status: r.status });
      if (e.secrets) this.#secrets.set(r.domain, Buffer.from(e.secrets, 'base64'));
      else this.#secrets.delete(r.domain);
      this.#serial = Math.max(this.#serial, r.serial);
    }
  }

  async clear(): Promise<void> {
    for (const m of [this.#records, this.#secrets, this.#meta, this.#kv, this.#leases, this.#logHashes, this.#logLeaves]) m.clear();
    this.#serial = 0;
    this.#log = [];
  }

  async logSize(): Promise<number> {
    return this.#log.length;
  }

  appendLogEntry(entry: Uint8Array): Promise<number> {
    return appendEntry(this, entry);
  }

  async logEntries(start: number, end: number): Promise<Buffer[]> {
    return this.#log.slice(start, end).map((e) => Buffer.from(e));
  }

  logHashes: HashReader = async (wanted) =>
    wanted.map((w) => {
      const h = this.#logHashes.get(hashKey(w));
      if (!h) throw missingHash(w);
      return Buffer.from(h);
    });

  async logIndexOf(leaf: Buffer): Promise<number | undefined> {
    return this.#logLeaves.get(leaf.toString('hex'));
  }

  async commitLogEntry(index: number, entry: Buffer, leaf: Buffer, hashes: StoredHash[]): Promise<number | undefined> {
    const held = this.#logLeaves.get(leaf.toString('hex'));
    if (held !== undefined) return held;
    if (this.#log.length !== index) return undefined;
    this.#log.push(Buffer.from(entry));
    this.#logLeaves.set(leaf.toString('hex'), index);
    for (const h of hashes) if (!this.#logHashes.has(hashKey(h))) this.#logHashes.set(hashKey(h), Buffer.from(h.hash));
    return index;
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}
