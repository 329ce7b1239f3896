import type { Domain } from '../domain.js';
import { MailmeshError } from '../errors.js';
import type { DomainRecord, RecordDraft } from '../record.js';
import type { LogStore } from './log.js';

export interface PutOptions {
  /**
   * Compare-and-set: `null` means the domain must not exist yet (else DOMAIN_EXISTS);
   * a number means the stored serial must still be that one (else SERIAL_CONFLICT).
   */
  ifSerial?: number | null;
  /** Sealed private keys to store with the record in the same atomic write; `null` deletes them. */
  secrets?: Buffer | null;
}

export interface KvPutOptions {
  ttlSec?: number;
  ifAbsent?: boolean;
}

/** What every store is: a backend that can be reached and closed. */
export interface StoreConnection {
  readonly kind: 'sqlite' | 'redis' | 'memory';
  /** Throws STORE_UNAVAILABLE if the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where domain records live (the Directory's side). Every implementation passes
 * test/directory/store/record-contract.ts: writes are atomic, and every write takes the next
 * value of one store-wide serial that only grows, so a reader can sync with `listSince(serial)`.
 * Meta values sit here because the master-key check must live where the sealed secrets do.
 */
export interface RecordStore extends StoreConnection {
  /** The record as stored, including stale and deleted (tombstone) records. */
  getRecord(domain: Domain): Promise<DomainRecord | undefined>;
  putRecord(draft: RecordDraft, opts?: PutOptions): Promise<DomainRecord>;
  getSecrets(domain: Domain): Promise<Buffer | undefined>;
  /** Records whose serial is greater than `since`, by ascending serial, at most `limit`. */
  listSince(since: number, limit: number): Promise<DomainRecord[]>;
  /** The highest serial handed out so far (0 for an empty store). */
  serial(): Promise<number>;
  /** Store-wide values set once (the master-key check, WebMail's sealed keys). */
  getMeta(name: string): Promise<string | undefined>;
  /** Sets a value only if none is set; returns the value that is set afterwards. */
  setMetaIfAbsent(name: string, value: string): Promise<string>;
  /**
   * The change feed, only on stores shared between processes (Redis; SQLite, whose file a CLI
   * process shares with serve, by a poll): calls `onChange` after every record write any
   * process commits, and with no argument when notices may have been lost (a reconnect).
   * Resolves once subscribed; close() ends the subscription.
   */
  subscribe?(onChange: (c?: { domain: Domain; serial: number }) => void): Promise<void>;
}

/** The meta values of a record store alone: what the master-key check and WebMail's keys need. */
export type MetaStore = Pick<RecordStore, 'getMeta' | 'setMetaIfAbsent'>;

/**
 * A small mutable key-value space with counters and leases (WebMail registrations and sessions,
 * rate counters, recoveries, pins, lifecycle marks, leases); expired entries read as absent.
 * Every implementation passes test/directory/store/kv-contract.ts.
 */
export interface KvStore extends StoreConnection {
  kvGet(key: string): Promise<string | undefined>;
  /** Sets a value (for `ttlSec` seconds if given); with `ifAbsent` only when no live value exists. Returns whether it was set. */
  kvPut(key: string, value: string, opts?: KvPutOptions): Promise<boolean>;
  kvDelete(key: string): Promise<void>;
  /**
   * A counter in the kv space (rate limits, failed passwords), atomic across the processes
   * sharing the store: adds 1 and returns the new count and the milliseconds it has left. A
   * counter that is absent or expired starts at 1 with a life of `ttlMs`; with `slide` every
   * increment gives it a new life of `ttlMs` (it expires `ttlMs` after the last one). A key
   * that holds something other than an integer starts again at 1. `kvGet` reads the count as
   * decimal text; `kvDelete` resets it.
   */
  kvIncr(key: string, ttlMs: number, opts?: { slide?: boolean }): Promise<{ count: number; ttlMs: number }>;
  /**
   * Leases, so that periodic work runs on one node of a cluster at a time: takes the lease
   * `name` for `owner` for `ttlSec` seconds when it is free, expired or already `owner`'s (then
   * it is renewed). Atomic. Returns whether `owner` holds it now.
   */
  acquireLease(name: string, owner: string, ttlSec: number): Promise<boolean>;
  /** Gives the lease up if `owner` holds it; otherwise does nothing. */
  releaseLease(name: string, owner: string): Promise<void>;
}

/**
 * One piece of a store's state, as `entries()` yields it and `restoreEntry()` writes it back
 * (backups, docs/backup.md): a record with its serial and its sealed secrets (base64), a meta
 * value, a live kv entry with its expiry (milliseconds since the epoch; none for a lasting one), a
 * transparency log entry with its index (base64; the log's hashes follow from its entries).
 */
export type StoreEntry =
  | { kind: 'record'; record: DomainRecord; secrets?: string }
  | { kind: 'meta'; name: string; value: string }
  | { kind: 'kv'; key: string; value: string; expiresAt?: number }
  | { kind: 'log'; index: number; entry: string };

/**
 * The whole state of a store, generically: whatever kinds of records, meta values and kv
 * documents later code adds, a backup carries them without knowing them. Every implementation
 * passes test/directory/store/dump-contract.ts.
 */
export interface StoreDump {
  /** Every record (tombstones too), meta value, live kv entry and log entry (in index order); not leases (they belong to running processes). */
  entries(): AsyncIterable<StoreEntry>;
  /** Writes an entry back as it was: a record keeps its serial (the store-wide serial rises to it); meta and kv values are replaced; a log entry is appended (at its index, or STORE_NOT_EMPTY). */
  restoreEntry(e: StoreEntry): Promise<void>;
  /** Removes everything: records, secrets, meta values, kv entries, leases and the log. */
  clear(): Promise<void>;
}

/**
 * What openStore returns and each implementation (memory, sqlite, redis) is: every side in one
 * backend (the transparency log's too, directory/store/log.ts). The composition root hands each user the side it needs.
 */
export interface Store extends RecordStore, KvStore, StoreDump, LogStore {}

/** Whether a store holds anything at all (a record, a meta value, a kv entry or a log entry). */
export async function storeIsEmpty(store: StoreDump): Promise<boolean> {
  for await (const _ of store.entries()) return false;
  return true;
}

/** The compare-and-set rule of PutOptions.ifSerial, in one place for every implementation. */
export function assertSerial(domain: Domain, current: { serial: number; status: string } | undefined, ifSerial: number | null | undefined): void {
  if (ifSerial === undefined) return;
  if (ifSerial === null) {
    if (current && current.status !== 'deleted') throw new MailmeshError('DOMAIN_EXISTS', domain);
    return;
  }
  if (current?.serial !== ifSerial) throw new MailmeshError('SERIAL_CONFLICT', `${domain}: expected serial ${ifSerial}, found ${current?.serial ?? 'none'}`);
}

/** Parses what a store kept, merging the serial it assigned. */
export function decodeRecord(json: string, serial: number): DomainRecord {
  return { ...(JSON.parse(json) as RecordDraft), serial };
}

export function encodeDraft(draft: RecordDraft): string {
  const { serial: _drop, ...rest } = draft as RecordDraft & { serial?: number };
  return JSON.stringify(rest);
}

/** The kv calls a store of JSON documents needs (pins, recoveries, the discovery cache). */
export type KvDocuments = Pick<KvStore, 'kvGet' | 'kvPut' | 'kvDelete'>;

/** A JSON document kept under a kv key; undefined when there is none. */
export async function kvGetJson<T>(kv: Pick<KvStore, 'kvGet'>, key: string): Promise<T | undefined> {
  const text = await kv.kvGet(key);
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

/** Writes a JSON document under a kv key. */
export async function kvPutJson(kv: Pick<KvStore, 'kvPut'>, key: string, value: unknown): Promise<void> {
  await kv.kvPut(key, JSON.stringify(value));
}
