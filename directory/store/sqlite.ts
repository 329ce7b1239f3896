import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Domain } from '../domain.js';
import { MailmeshError } from '../errors.js';
import type { DomainRecord, RecordDraft } from '../record.js';
import type { HashReader, StoredHash } from '../tlog/merkle.js';
import { appendEntry, logDump, missingHash, restoreLogEntry, type LogBackend } from './log.js';
import { assertSerial, decodeRecord, encodeDraft, type KvPutOptions, type PutOptions, type Store, type StoreEntry } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS records (
  domain TEXT PRIMARY KEY,
  serial INTEGER NOT NULL UNIQUE,
  status TEXT NOT NULL,
  json   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (domain TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires INTEGER);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL UNIQUE, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS log_hashes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
`;

/**
 * The database holds sealed secrets and every record: readable by the owner only. A directory
 * it creates is 0700; the file is created 0600 before SQLite opens it (SQLite gives its -wal and
 * -shm files the mode of the database file), and an existing file, -wal or -shm is narrowed to 0600.
 * An existing directory is left as it is (it may be shared, like the working directory).
 */
function privateFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

/** The embedded default: one SQLite file, WAL journal, every write one transaction. */
export class SqliteStore implements Store, LogBackend {
  readonly kind = 'sqlite' as const;
  /** How often subscribe() looks for other connections' writes (a CLI write reaches serve within 2 s). */
  static readonly POLL_MS = 250;
  readonly #db: Database.Database;
  readonly #put: (draft: RecordDraft, opts: PutOptions) => DomainRecord;
  readonly #commitLog: (index: number, entry: Buffer, leaf: Buffer, hashes: StoredHash[]) => number | undefined;

  readonly #now: () => number;
  /** The change feed's poll timers (subscribe), stopped by close(). */
  readonly #polls = new Set<NodeJS.Timeout>();
  /** Statements compiled once, by their SQL text (better-sqlite3 compiles on every prepare). */
  readonly #statements = new Map<string, Database.Statement>();

  /** `clock` (milliseconds) decides when leases and kv entries expire. */
  constructor(file: string, opts: { clock?: () => number } = {}) {
    this.#now = opts.clock ?? Date.now;
    try {
      if (file !== ':memory:') privateFile(file);
      this.#db = new Database(file);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('busy_timeout = 5000');
      this.#db.exec(SCHEMA);
    } catch (e) {
      throw new MailmeshError('STORE_UNAVAILABLE', `sqlite ${file}: ${(e as Error).message}`, { cause: e });
    }
    const get = this.#db.prepare<[string], { serial: number; status: string }>('SELECT serial, status FROM records WHERE domain = ?');
    const next = this.#db.prepare(
      `INSERT INTO meta (name, value) VALUES ('serial', '1')
       ON CONFLICT(name) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER) AS serial`,
    );
    const upsert = this.#db.prepare(
      `INSERT INTO records (domain, serial, status, json) VALUES (?, ?, ?, ?)
       ON CONFLICT(domain) DO UPDATE SET serial = excluded.serial, status = excluded.status, json = excluded.json`,
    );
    const setSecret = this.#db.prepare('INSERT OR REPLACE INTO secrets (domain, blob) VALUES (?, ?)');
    const delSecret = this.#db.prepare('DELETE FROM secrets WHERE domain = ?');
    this.#put = this.#db.transaction((draft: RecordDraft, opts: PutOptions) => {
      assertSerial(draft.domain, get.get(draft.domain), opts.ifSerial);
      const { serial } = next.get() as { serial: number };
      const json = encodeDraft(draft);
      upsert.run(draft.domain, serial, draft.status, json);
      if (opts.secrets) setSecret.run(draft.domain, opts.secrets);
      else if (opts.secrets === null) delSecret.run(draft.domain);
      return decodeRecord(json, serial);
    });
    // One IMMEDIATE transaction (the write lock first): the compare-and-set on the log's size.
    const commitLog = this.#db.transaction((index: number, entry: Buffer, leaf: Buffer, hashes: StoredHash[]) => {
      const held = this.#sql<[Buffer], { idx: number }>('SELECT idx FROM log_entries WHERE leaf = ?').get(leaf);
      if (held) return held.idx;
      if (this.#logSize() !== index) return undefined;
      this.#sql('INSERT INTO log_entries (idx, leaf, entry) VALUES (?, ?, ?)').run(index, leaf, entry);
      for (const h of hashes) this.#sql('INSERT OR IGNORE INTO log_hashes (level, idx, hash) VALUES (?, ?, ?)').run(h.level, h.index, h.hash);
      return index;
    });
    this.#commitLog = (...args) => commitLog.immediate(...args);
  }

  #sql<P extends unknown[] | object = unknown[], R = unknown>(text: string): Database.Statement<P, R> {
    let st = this.#statements.get(text);
    if (!st) this.#statements.set(text, (st = this.#db.prepare(text)));
    return st as unknown as Database.Statement<P, R>;
  }

  async getRecord(domain: Domain): Promise<DomainRecord | undefined> {
    const row = this.#sql<[string], { json: string; serial: number }>('SELECT json, serial FROM records WHERE domain = ?').get(domain);
    return row && decodeRecord(row.json, row.serial);
  }

  async putRecord(draft: RecordDraft, opts: PutOptions = {}): Promise<DomainRecord> {
    return this.#put(draft, opts);
  }

  async getSecrets(domain: Domain): Promise<Buffer | undefined> {
    const row = this.#sql<[string], { blob: Buffer }>('SELECT blob FROM secrets WHERE domain = ?').get(domain);
    return row?.blob;
  }

  async listSince(since: number, limit: number): Promise<DomainRecord[]> {
    return this
      .#sql<[number, number], { json: string; serial: number }>('SELECT json, serial FROM records WHERE serial > ? ORDER BY serial LIMIT ?')
      .all(since, limit)
      .map((r) => decodeRecord(r.json, r.serial));
  }

  async serial(): Promise<number> {
    return Number((await this.getMeta('serial')) ?? 0);
  }

  async getMeta(name: string): Promise<string | undefined> {
    return this.#sql<[string], { value: string }>('SELECT value FROM meta WHERE name = ?').get(name)?.value;
  }

  async setMetaIfAbsent(name: string, value: string): Promise<string> {
    this.#sql('INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)').run(name, value);
    return (await this.getMeta(name))!;
  }

  async kvGet(key: string): Promise<string | undefined> {
    return this
      .#sql<[string, number], { value: string }>('SELECT value FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)')
      .get(key, this.#now())?.value;
  }

  async kvPut(key: string, value: string, opts: KvPutOptions = {}): Promise<boolean> {
    const now = this.#now();
    const expires = opts.ttlSec ? now + opts.ttlSec * 1000 : null;
    if (!opts.ifAbsent) {
      this.#sql('INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)').run(key, value, expires);
      return true;
    }
    // An expired entry counts as absent: replace it, keep a live one.
    const r = this
      .#sql(
        `INSERT INTO kv (key, value, expires) VALUES (?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires WHERE kv.expires IS NOT NULL AND kv.expires <= ?`,
      )
      .run(key, value, expires, now);
    return r.changes > 0;
  }

  async kvDelete(key: string): Promise<void> {
    this.#sql('DELETE FROM kv WHERE key = ?').run(key);
  }

  async kvIncr(key: string, ttlMs: number, opts: { slide?: boolean } = {}): Promise<{ count: number; ttlMs: number }> {
    const now = this.#now();
    // One statement, so atomic: start a counter (absent, expired or not an integer) or add 1 to a live one.
    const restart = `(kv.expires IS NOT NULL AND kv.expires <= @now) OR CAST(CAST(kv.value AS INTEGER) AS TEXT) IS NOT kv.value`;
    const r = this
      .#sql<{ key: string; now: number; expires: number; slide: number }, { value: string; expires: number }>(
        `INSERT INTO kv (key, value, expires) VALUES (@key, '1', @expires)
         ON CONFLICT(key) DO UPDATE SET
           value = CASE WHEN ${restart} THEN '1' ELSE CAST(CAST(kv.value AS INTEGER) + 1 AS TEXT) END,
           expires = CASE WHEN @slide OR kv.expires IS NULL OR ${restart} THEN excluded.expires ELSE kv.expires END
         RETURNING value, expires`,
      )
      .get({ key, now, expires: now + ttlMs, slide: opts.slide ? 1 : 0 })!;
    return { count: Number(r.value), ttlMs: r.expires - now };
  }

  async acquireLease(name: string, owner: string, ttlSec: number): Promise<boolean> {
    const now = this.#now();
    // One statement, so atomic: insert, or take over a lease that is ours or expired.
    const r = this
      .#sql(
        `INSERT INTO leases (name, owner, expires) VALUES (?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires WHERE leases.owner = excluded.owner OR leases.expires <= ?`,
      )
      .run(name, owner, now + Math.round(ttlSec * 1000), now);
    return r.changes > 0;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    this.#sql('DELETE FROM leases WHERE name = ? AND owner = ?').run(name, owner);
  }

  async *entries(): AsyncIterable<StoreEntry> {
    // One read transaction: a consistent snapshot while serve writes (SQLite isolation).
    const read = this.#db.transaction(() => ({
      records: this.#sql<[], { json: string; serial: number; blob: Buffer | null }>('SELECT json, serial, blob FROM records LEFT JOIN secrets USING (domain) ORDER BY serial').all(),
      // The store-wide serial is a meta row here; restoreEntry of the records sets it again.
      meta: this.#sql<[], { name: string; value: string }>("SELECT name, value FROM meta WHERE name <> 'serial' ORDER BY name").all(),
      kv: this.#sql<[number], { key: string; value: string; expires: number | null }>('SELECT key, value, expires FROM kv WHERE expires IS NULL OR expires > ? ORDER BY key').all(this.#now()),
    }));
    const { records, meta, kv } = read();
    for (const r of records) yield { kind: 'record', record: decodeRecord(r.json, r.serial), ...(r.blob && { secrets: r.blob.toString('base64') }) };
    for (const m of meta) yield { kind: 'meta', ...m };
    for (const e of kv) yield { kind: 'kv', key: e.key, value: e.value, ...(e.expires !== null && { expiresAt: e.expires }) };
    yield* logDump(this);
  }

  async restoreEntry(e: StoreEntry): Promise<void> {
    if (e.kind === 'log') await restoreLogEntry(this, e);
    else if (e.kind === 'meta') this.#sql('INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)').run(e.name, e.value);
    else if (e.kind === 'kv') this.#sql('INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)').run(e.key, e.value, e.expiresAt ?? null);
    else this.#restoreRecord(e.record, e.secrets);
  }

  #restoreRecord = (r: DomainRecord, secrets: string | undefined) =>
    this.#db.transaction(() => {
      this.#sql('INSERT OR REPLACE INTO records (domain, serial, status, json) VALUES (?, ?, ?, ?)').run(r.domain, r.serial, r.status, encodeDraft(r));
      if (secrets) this.#sql('INSERT OR REPLACE INTO secrets (domain, blob) VALUES (?, ?)').run(r.domain, Buffer.from(secrets, 'base64'));
      else this.#sql('DELETE FROM secrets WHERE domain = ?').run(r.domain);
      this.#sql(
        `INSERT INTO meta (name, value) VALUES ('serial', @serial)
         ON CONFLICT(name) DO UPDATE SET value = MAX(CAST(value AS INTEGER), @serial)`,
      ).run({ serial: r.serial });
    })();

  async clear(): Promise<void> {
    this.#db.exec('BEGIN; DELETE FROM records; DELETE FROM secrets; DELETE FROM meta; DELETE FROM kv; DELETE FROM leases; DELETE FROM log_entries; DELETE FROM log_hashes; COMMIT;');
  }

  #logSize(): number {
    return this.#sql<[], { n: number }>('SELECT COALESCE(MAX(idx) + 1, 0) AS n FROM log_entries').get()!.n;
  }

  async logSize(): Promise<number> {
    return this.#logSize();
  }

  appendLogEntry(entry: Uint8Array): Promise<number> {
    return appendEntry(this, entry);
  }

  async logEntries(start: number, end: number): Promise<Buffer[]> {
    return this.#sql<[number, number], { entry: Buffer }>('SELECT entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx').all(start, end).map((r) => r.entry);
  }

  logHashes: HashReader = async (wanted) => {
    const got = this.#sql<[number, number], { hash: Buffer }>('SELECT hash FROM log_hashes WHERE level = ? AND idx = ?');
    return wanted.map((w) => {
      const row = got.get(w.level, w.index);
      if (!row) throw missingHash(w);
      return row.hash;
    });
  };

  async logIndexOf(leaf: Buffer): Promise<number | undefined> {
    return this.#sql<[Buffer], { idx: number }>('SELECT idx FROM log_entries WHERE leaf = ?').get(leaf)?.idx;
  }

  async commitLogEntry(index: number, entry: Buffer, leaf: Buffer, hashes: StoredHash[]): Promise<number | undefined> {
    return this.#commitLog(index, entry, leaf, hashes);
  }

  async ping(): Promise<void> {
    this.#sql('SELECT 1').get();
  }

  /**
   * The change feed of a file shared by processes (a CLI beside a running serve): every
   * POLL_MS the store-wide serial is read, and a higher one calls `onChange` for each record
   * written since, whichever connection committed it (this one too, as on Redis). A failed
   * read is retried on the next tick; the timer keeps no process alive and close() stops it.
   */
  async subscribe(onChange: (c?: { domain: Domain; serial: number }) => void): Promise<void> {
    let seen = await this.serial();
    const since = this.#sql<[number], { domain: Domain; serial: number }>('SELECT domain, serial FROM records WHERE serial > ? ORDER BY serial');
    const timer = setInterval(() => {
      try {
        if (!this.#db.open) return;
        const serial = Number(this.#sql<[], { value: string }>("SELECT value FROM meta WHERE name = 'serial'").get()?.value ?? 0);
        if (serial <= seen) return;
        const rows = since.all(seen);
        seen = Math.max(serial, ...rows.map((r) => r.serial));
        for (const r of rows) onChange({ domain: r.domain, serial: r.serial });
      } catch {
        // SQLITE_BUSY past busy_timeout, or the file went away: the next tick tries again.
      }
    }, SqliteStore.POLL_MS);
    timer.unref();
    this.#polls.add(timer);
  }

  async close(): Promise<void> {
    for (const t of this.#polls) clearInterval(t);
    this.#polls.clear();
    if (this.#db.open) this.#db.close();
  }
}
