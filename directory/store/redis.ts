import { Redis } from 'ioredis';
import type { Domain } from '../domain.js';
import { MailmeshError } from '../errors.js';
import type { DomainRecord, RecordDraft } from '../record.js';
import { decodeRecord, encodeDraft, type KvPutOptions, type PutOptions, type Store } from './store.js';

/**
 * One atomic write: compare-and-set on the record's serial, take the next store-wide
 * serial, write record, index and secrets. KEYS: record hash, serial counter, serial index, secrets.
 */
const PUT = `
local cur = redis.call('HMGET', KEYS[1], 'serial', 'status')
if ARGV[3] == 'new' and cur[1] and cur[2] ~= 'deleted' then return redis.error_reply('DOMAIN_EXISTS exists') end
if ARGV[3] == 'cas' and cur[1] ~= ARGV[4] then return redis.error_reply('SERIAL_CONFLICT ' .. tostring(cur[1])) end
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'serial', n, 'status', ARGV[2])
redis.call('ZADD', KEYS[3], n, ARGV[7])
if ARGV[5] == 'set' then redis.call('SET', KEYS[4], ARGV[6]) elseif ARGV[5] == 'del' then redis.call('DEL', KEYS[4]) end
return n
`;

type RedisWithPut = Redis & {
  mmPut(k1: string, k2: string, k3: string, k4: string, ...args: (string | Buffer)[]): Promise<number>;
};

/**
 * The shared store of a gateway cluster. Every key starts with the prefix, which carries a
 * hash tag (`{…}`) so that the keys of one directory share a Redis Cluster slot.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly #r: RedisWithPut;
  readonly #p: string;

  constructor(url: string, opts: { prefix: string; connectTimeoutMs?: number }) {
    this.#p = opts.prefix;
    this.#r = new Redis(url, {
      lazyConnect: true,
      connectTimeout: opts.connectTimeoutMs ?? 2000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      retryStrategy: (n) => Math.min(n * 200, 2000),
    }) as RedisWithPut;
    this.#r.on('error', () => {}); // surfaced per command as STORE_UNAVAILABLE
    this.#r.defineCommand('mmPut', { numberOfKeys: 4, lua: PUT });
  }

  async connect(): Promise<this> {
    try {
      await this.#r.connect();
      await this.#r.ping();
    } catch (e) {
      this.#r.disconnect();
      throw new MailmeshError('STORE_UNAVAILABLE', `redis: ${(e as Error).message}`, { cause: e });
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
      ),
    );
    return decodeRecord(json, Number(serial));
  }

  async getSecrets(domain: Domain): Promise<Buffer | undefined> {
    return (await this.#run(() => this.#r.getBuffer(this.#k('sec', domain)))) ?? undefined;
  }

  async listSince(since: number, limit: number): Promise<DomainRecord[]> {
    const domains = await this.#run(() => this.#r.zrangebyscore(this.#k('bySerial'), `(${since}`, '+inf', 'LIMIT', 0, limit));
    const out: DomainRecord[] = [];
    for (const d of domains) {
      const r = await this.getRecord(d as Domain);
      // A record rewritten between the two reads has moved past `since` and comes on a later page.
      if (r && r.serial > since) out.push(r);
    }
    return out.sort((a, b) => a.serial - b.serial);
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

  async setMetaIfAbsent(name: string, value: string): Promise<string> {
    await this.#run(() => this.#r.set(this.#k('meta', name), value, 'NX'));
    return (await this.getMeta(name))!;
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#r.ping());
  }

  async close(): Promise<void> {
    this.#r.disconnect();
  }

  /** For tests and `mailmesh` maintenance: removes every key under this store's prefix. */
  async destroy(): Promise<void> {
    const keys = await this.#run(() => this.#r.keys(this.#p.replace(/[*?[\]]/g, '\\$&') + '*'));
    if (keys.length) await this.#run(() => this.#r.del(...keys));
  }
}
