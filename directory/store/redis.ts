import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Domain } from '../domain.js';
import { MailmeshError } from '../errors.js';
import type { DomainRecord, RecordDraft } from '../record.js';
import { logDump, restoreLogEntry } from './log.js';
import { RedisLog } from './redislog.js';
import { decodeRecord, encodeDraft, type KvPutOptions, type PutOptions, type Store, type StoreEntry } from './store.js';

/**
 * One atomic write: compare-and-set on the record's serial, take the next store-wide
 * serial, write record, index and secrets, and announce `<serial> <domain>` on the changes
 * channel (ARGV[8]) for the other nodes. KEYS: record hash, serial counter, serial index, secrets.
 */
const PUT = `
local cur = redis.call('HMGET', KEYS[1], 'serial', 'status')
if ARGV[3] == 'new' and cur[1] and cur[2] ~= 'deleted' then return redis.error_reply('DOMAIN_EXISTS exists') end
if ARGV[3] == 'cas' and cur[1] ~= ARGV[4] then return redis.error_reply('SERIAL_CONFLICT ' .. tostring(cur[1])) end
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'serial', n, 'status', ARGV[2])
redis.call('ZADD', KEYS[3], n, ARGV[7])
if ARGV[5] == 'set' then redis.call('SET', KEYS[4], ARGV[6]) elseif ARGV[5] == 'del' then redis.call('DEL', KEYS[4]) end
redis.call('PUBLISH', ARGV[8], n .. ' ' .. ARGV[7])
return n
`;

/** A record written back as a backup holds it (restoreEntry): its own serial, the index, the store-wide serial raised to it, the secrets set or removed. KEYS as PUT's. */
const RESTORE = `
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'serial', ARGV[2], 'status', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5]) else redis.call('DEL', KEYS[4]) end
return 1
`;

type PutCommand = {
  mmRestore(k1: string, k2: string, k3: string, k4: string, ...args: (string | Buffer)[]): Promise<number>;
  mmPut(k1: string, k2: string, k3: string, k4: string, ...args: (string | Buffer)[]): Promise<number>;
  mmLease(key: string, owner: string, ttlMs: string): Promise<number>;
  mmRelease(key: string, owner: string): Promise<number>;
  mmIncr(key: string, ttlMs: string, slide: string): Promise<[number, number]>;
};

/** A lease: taken when free (an expired key is gone) or already the owner's; PX sets the expiry. */
const LEASE = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** Compare-and-delete: only the owner releases its lease. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
/** A counter: INCR (a value that is not an integer starts again), and a life of ARGV[1] ms when it starts, when it slides (ARGV[2]) or when it has none. */
const INCR = `
local v = redis.call('GET', KEYS[1])
if v and not string.match(v, '^%-?%d+$') then redis.call('DEL', KEYS[1]) end
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ARGV[2] == '1' or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;
type Client = (Redis | Cluster) & PutCommand;

/** Where a store URL points: one server, a Sentinel-watched master, or a Redis Cluster. */
export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; nodes: { host: string; port: number }[]; master: string; db: number; username?: string; password?: string }
  | { mode: 'cluster'; nodes: { host: string; port: number }[]; username?: string; password?: string };

/**
 * Parses a Redis store URL: `redis://…` / `rediss://…` (standalone, as ioredis reads it),
 * `redis-sentinel://[user:pass@]host:port[,host:port…]/<masterName>[?db=N]` and
 * `redis-cluster://[user:pass@]host:port[,host:port…]`. The credentials are the data
 * nodes'; bad input is CONFIG_INVALID.
 */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\/./.test(url)) return { mode: 'standalone', url };
  const bad = (why: string) => new MailmeshError('CONFIG_INVALID', `store.url: ${why} in ${JSON.stringify(url.replace(/\/\/[^@/]*@/, '//********@'))}`);
  const m = /^redis-(sentinel|cluster):\/\/(?:([^@/]*)@)?([^/?#@]+)(?:\/([^/?#]*))?(?:\?([^#]*))?$/.exec(url);
  if (!m) throw bad('expected redis://, rediss://, redis-sentinel://host:port[,…]/<master> or redis-cluster://host:port[,…]');
  const [, mode, auth, hosts, path = '', query = ''] = m;
  const nodes = hosts!.split(',').map((h) => {
    const hp = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(h);
    const port = Number(hp?.[2]);
    if (!hp || port < 1 || port > 65535) throw bad(`bad host:port ${JSON.stringify(h)}`);
    return { host: hp[1]!.replace(/^\[|\]$/g, ''), port };
  });
  let username: string | undefined;
  let password: string | undefined;
  if (auth !== undefined) {
    const colon = auth.indexOf(':');
    try {
      username = decodeURIComponent(colon < 0 ? auth : auth.slice(0, colon)) || undefined;
      password = colon < 0 ? undefined : decodeURIComponent(auth.slice(colon + 1));
    } catch {
      throw bad('bad percent-encoding in the credentials');
    }
  }
  const params = new URLSearchParams(query);
  if (mode === 'cluster') {
    if (path || query) throw bad('a cluster URL has no path or query (Redis Cluster has only db 0)');
    return { mode: 'cluster', nodes, username, password };
  }
  const master = path && /^[A-Za-z0-9._-]+$/.test(path) ? path : undefined;
  if (!master) throw bad('a sentinel URL names the master: redis-sentinel://host:port/<masterName>');
  const unknown = [...params.keys()].filter((k) => k !== 'db');
  if (unknown.length) throw bad(`unknown parameter ${unknown[0]}`);
  const db = params.get('db') ?? '0';
  if (!/^\d{1,2}$/.test(db)) throw bad(`bad db ${JSON.stringify(db)}`);
  return { mode: 'sentinel', nodes, master, db: Number(db), username, password };
}

function newClient(target: RedisTarget, connectTimeoutMs: number): Redis | Cluster {
  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    retryStrategy: (n) => Math.min(n * 200, 2000),
  };
  switch (target.mode) {
    case 'standalone':
      return new Redis(target.url, common);
    case 'sentinel':
      return new Redis({
        ...common,
        sentinels: target.nodes,
        name: target.master,
        db: target.db,
        username: target.username,
        password: target.password,
        sentinelRetryStrategy: (n) => Math.min(n * 200, 2000),
      });
    case 'cluster': {
      const opts: ClusterOptions = {
        lazyConnect: true,
        enableOfflineQueue: true,
        clusterRetryStrategy: (n) => Math.min(n * 200, 2000),
        redisOptions: { connectTimeout: connectTimeoutMs, maxRetriesPerRequest: 1, username: target.username, password: target.password },
      };
      return new Cluster(target.nodes, opts);
    }
  }
}

/**
 * The shared store of a gateway cluster, on a standalone Redis, a Sentinel-watched master or
 * a Redis Cluster (parseRedisUrl). Every key starts with the prefix, which carries a hash tag
 * (`{…}`) so that the keys of one directory share a Redis Cluster slot: the write script
 * touches several keys, and Redis Cluster runs a script only on keys of one slot.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly #r: Client;
  readonly #p: string;
  readonly #connectTimeoutMs: number;
  #sub: Redis | Cluster | undefined;
  readonly #log: RedisLog; // the transparency log (log.ts, redislog.ts)

  constructor(url: string, opts: { prefix: string; connectTimeoutMs?: number }) {
    this.#p = opts.prefix;
    const target = parseRedisUrl(url);
    // Redis Cluster hashes only the part between the first `{` and the next `}` (if non-empty).
    const open = opts.prefix.indexOf('{');
    if (target.mode === 'cluster' && (open < 0 || opts.prefix.indexOf('}', open + 1) <= open + 1)) {
      throw new MailmeshError('CONFIG_INVALID', `store.redisPrefix ${JSON.stringify(opts.prefix)} needs a {hash tag} on a Redis Cluster`);
    }
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.#r = newClient(target, this.#connectTimeoutMs) as Client;
    this.#r.on('error', () => {}); // surfaced per command as STORE_UNAVAILABLE
    this.#r.defineCommand('mmPut', { numberOfKeys: 4, lua: PUT });
    this.#r.defineCommand('mmLease', { numberOfKeys: 1, lua: LEASE });
    this.#r.defineCommand('mmRelease', { numberOfKeys: 1, lua: RELEASE });
    this.#r.defineCommand('mmIncr', { numberOfKeys: 1, lua: INCR });
    this.#r.defineCommand('mmRestore', { numberOfKeys: 4, lua: RESTORE });
    this.#log = new RedisLog(this.#r, (part) => this.#k(part), (f) => this.#run(f));
  }

  logSize = () => this.#log.logSize();
  appendLogEntry = (entry: Uint8Array) => this.#log.appendLogEntry(entry);
  logEntries = (start: number, end: number) => this.#log.logEntries(start, end);
  logHashes: RedisLog['logHashes'] = (wanted) => this.#log.logHashes(wanted);
  logIndexOf = (leaf: Buffer) => this.#log.logIndexOf(leaf);

  /** Connects and pings; gives up with STORE_UNAVAILABLE after three connect timeouts (ioredis keeps retrying unreachable Sentinels). */
  async connect(): Promise<this> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no connection within the time limit')), 3 * this.#connectTimeoutMs);
    });
    try {
      await Promise.race([(async () => {
        await this.#r.connect();
        await this.#r.ping();
      })(), deadline]);
    } catch (e) {
      this.#r.disconnect();
      throw new MailmeshError('STORE_UNAVAILABLE', `redis: ${(e as Error).message}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
    return this;
  }

  #k(...parts: string[]): string {
    return this.#p + parts.join(':');
  }

  async #run<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      const msg = (e as Error).message ?? '';
      // Redis may prefix a script's error reply (e.g. "ERR DOMAIN_EXISTS").
      const code = /\b(DOMAIN_EXISTS|SERIAL_CONFLICT)\b/.exec(msg)?.[1] as 'DOMAIN_EXISTS' | 'SERIAL_CONFLICT' | undefined;
      if (code) throw new MailmeshError(code, msg);
      throw new MailmeshError('STORE_UNAVAILABLE', `redis: ${msg}`, { cause: e });
    }
  }

  async getRecord(domain: Domain): Promise<DomainRecord | undefined> {
    const [json, serial] = await this.#run(() => this.#r.hmget(this.#k('rec', domain), 'json', 'serial'));
    return json && serial ? decodeRecord(json, Number(serial)) : undefined;
  }

  async putRecord(draft: RecordDraft, opts: PutOptions = {}): Promise<DomainRecord> {
    const json = encodeDraft(draft);
    const mode = opts.ifSerial === undefined ? 'any' : opts.ifSerial === null ? 'new' : 'cas';
    const secretsMode = opts.secrets ? 'set' : opts.secrets === null ? 'del' : 'keep';
    const serial = await this.#run(() =>
      this.#r.mmPut(
        this.#k('rec', draft.domain),
        this.#k('serial'),
        this.#k('bySerial'),
        this.#k('sec', draft.domain),
        json,
        draft.status,
        mode,
        String(opts.ifSerial ?? ''),
        secretsMode,
        opts.secrets ?? '',
        draft.domain,
        this.#k('changes'),
      ),
    );
    return decodeRecord(json, Number(serial));
  }

  async getSecrets(domain: Domain): Promise<Buffer | undefined> {
    return (await this.#run(() => this.#r.getBuffer(this.#k('sec', domain)))) ?? undefined;
  }

  async listSince(since: number, limit: number): Promise<DomainRecord[]> {
    const domains = await this.#run(() => this.#r.zrangebyscore(this.#k('bySerial'), `(${since}`, '+inf', 'LIMIT', 0, limit));
    // Sent together, so one round trip for the page rather than one per domain.
    const records = await Promise.all(domains.map((d) => this.getRecord(d as Domain)));
    // A record rewritten between the two reads has moved past `since` and comes on a later page.
    return records.filter((r): r is DomainRecord => r !== undefined && r.serial > since).sort((a, b) => a.serial - b.serial);
  }

  async serial(): Promise<number> {
    return Number((await this.#run(() => this.#r.get(this.#k('serial')))) ?? 0);
  }

  async getMeta(name: string): Promise<string | undefined> {
    return (await this.#run(() => this.#r.get(this.#k('meta', name)))) ?? undefined;
  }

  async kvGet(key: string): Promise<string | undefined> {
    return (await this.#run(() => this.#r.get(this.#k('kv', key)))) ?? undefined;
  }

  async kvPut(key: string, value: string, opts: KvPutOptions = {}): Promise<boolean> {
    const k = this.#k('kv', key);
    const ex = opts.ttlSec ? Math.ceil(opts.ttlSec) : undefined;
    const r = await this.#run(() =>
      ex ? (opts.ifAbsent ? this.#r.set(k, value, 'EX', ex, 'NX') : this.#r.set(k, value, 'EX', ex))
      : opts.ifAbsent ? this.#r.set(k, value, 'NX') : this.#r.set(k, value),
    );
    return r === 'OK';
  }

  async kvDelete(key: string): Promise<void> {
    await this.#run(() => this.#r.del(this.#k('kv', key)));
  }

  async kvIncr(key: string, ttlMs: number, opts: { slide?: boolean } = {}): Promise<{ count: number; ttlMs: number }> {
    const [count, left] = await this.#run(() => this.#r.mmIncr(this.#k('kv', key), String(Math.max(1, Math.round(ttlMs))), opts.slide ? '1' : '0'));
    return { count, ttlMs: left };
  }

  async setMetaIfAbsent(name: string, value: string): Promise<string> {
    await this.#run(() => this.#r.set(this.#k('meta', name), value, 'NX'));
    return (await this.getMeta(name))!;
  }

  async acquireLease(name: string, owner: string, ttlSec: number): Promise<boolean> {
    return (await this.#run(() => this.#r.mmLease(this.#k('lease', name), owner, String(Math.max(1, Math.round(ttlSec * 1000)))))) === 1;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.#run(() => this.#r.mmRelease(this.#k('lease', name), owner));
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#r.ping());
  }

  /**
   * Calls `onChange` for every write committed on this store by any node (from the PUBLISH in
   * the write script), and with no argument when the subscription was re-established after a
   * lost connection, since what was published meanwhile is gone. Uses a second connection.
   */
  async subscribe(onChange: (c?: { domain: Domain; serial: number }) => void): Promise<void> {
    const sub = (this.#sub ??= this.#r.duplicate());
    sub.on('error', () => {});
    const channel = this.#k('changes');
    sub.on('message', (ch: string, msg: string) => {
      const m = /^(\d+) (\S+)$/.exec(msg);
      if (ch === channel && m) onChange({ serial: Number(m[1]), domain: m[2] as Domain });
    });
    let first = true;
    sub.on('ready', () => {
      if (!first) onChange();
      first = false;
    });
    await this.#run(async () => {
      await sub.subscribe(channel);
    });
  }

  async close(): Promise<void> {
    this.#sub?.disconnect();
    this.#r.disconnect();
  }

  /** Every key under `prefix + part` (a glob tail), from every master of a Cluster. */
  async #keys(part: string): Promise<{ node: Redis; keys: string[] }[]> {
    const pattern = this.#p.replace(/[*?[\]\\]/g, '\\$&') + part;
    const nodes = this.#r instanceof Cluster ? this.#r.nodes('master') : [this.#r as Redis];
    return Promise.all(nodes.map(async (node) => ({ node, keys: (await this.#run(() => node.keys(pattern))).sort() })));
  }

  async *entries(): AsyncIterable<StoreEntry> {
    for (const { keys } of await this.#keys('rec:*')) {
      for (const k of keys) {
        const domain = k.slice(this.#k('rec', '').length) as Domain;
        const record = await this.getRecord(domain);
        const secrets = await this.getSecrets(domain);
        if (record) yield { kind: 'record', record, ...(secrets && { secrets: secrets.toString('base64') }) };
      }
    }
    for (const { keys } of await this.#keys('meta:*')) {
      for (const k of keys) {
        const value = await this.#run(() => this.#r.get(k));
        if (value !== null) yield { kind: 'meta', name: k.slice(this.#k('meta', '').length), value };
      }
    }
    for (const { keys } of await this.#keys('kv:*')) {
      for (const k of keys) {
        const [value, at] = await this.#run(() => Promise.all([this.#r.get(k), this.#r.pexpiretime(k)]));
        if (value !== null) yield { kind: 'kv', key: k.slice(this.#k('kv', '').length), value, ...(at > 0 && { expiresAt: at }) };
      }
    }
    yield* logDump(this);
  }

  async restoreEntry(e: StoreEntry): Promise<void> {
    if (e.kind === 'log') await restoreLogEntry(this, e);
    else if (e.kind === 'meta') await this.#run(() => this.#r.set(this.#k('meta', e.name), e.value));
    else if (e.kind === 'kv') {
      const k = this.#k('kv', e.key);
      await this.#run(() => (e.expiresAt === undefined ? this.#r.set(k, e.value) : this.#r.set(k, e.value, 'PXAT', e.expiresAt)));
    } else {
      const r = e.record;
      await this.#run(() =>
        this.#r.mmRestore(this.#k('rec', r.domain), this.#k('serial'), this.#k('bySerial'), this.#k('sec', r.domain),
          encodeDraft(r), String(r.serial), r.status, r.domain, e.secrets ? Buffer.from(e.secrets, 'base64') : ''),
      );
    }
  }

  async clear(): Promise<void> {
    await this.destroy();
  }

  /** For tests and `mailmesh` maintenance: removes every key under this store's prefix (on a Cluster, from every master). */
  async destroy(): Promise<void> {
    for (const { node, keys } of await this.#keys('*')) {
      // One hash tag, one slot: a multi-key DEL is allowed on a Cluster node too.
      if (keys.length) await this.#run(() => node.del(...keys));
    }
  }
}
