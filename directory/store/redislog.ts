import type { Cluster, Redis } from 'ioredis';
import type { HashReader, StoredHash } from '../tlog/merkle.js';
import { appendEntry, hashKey, missingHash, type LogBackend } from './log.js';

/**
 * The transparency log on Redis (directory/store/log.ts): one atomic script is the
 * compare-and-set on the size, so two nodes appending at once never fork the tree.
 * KEYS: size, entries (hash: index → entry), hashes (hash: `<level>/<index>` → hash), leaves
 * (hash: leaf hash → index). ARGV: index, entry, leaf hash, then field/hash pairs.
 * Returns the index, or -1 when the size is no longer ARGV[1].
 */
const COMMIT = `
local held = redis.call('HGET', KEYS[4], ARGV[3])
if held then return tonumber(held) end
local size = tonumber(redis.call('GET', KEYS[1]) or '0')
if size ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[1])
for i = 4, #ARGV, 2 do redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[1], size + 1)
return size
`;

type Client = (Redis | Cluster) & {
  mmLogCommit(k1: string, k2: string, k3: string, k4: string, ...args: (string | Buffer)[]): Promise<number>;
};

/** The log's keys under a store's prefix, and its commands on the store's connection; errors go through the store's `run`. */
export class RedisLog implements LogBackend {
  readonly #r: Client;
  readonly #keys: [size: string, entries: string, hashes: string, leaves: string];
  readonly #run: <T>(f: () => Promise<T>) => Promise<T>;

  constructor(r: Redis | Cluster, key: (part: string) => string, run: <T>(f: () => Promise<T>) => Promise<T>) {
    r.defineCommand('mmLogCommit', { numberOfKeys: 4, lua: COMMIT });
    this.#r = r as Client;
    this.#keys = [key('log:size'), key('log:entries'), key('log:hashes'), key('log:leaves')];
    this.#run = run;
  }

  async logSize(): Promise<number> {
    return Number((await this.#run(() => this.#r.get(this.#keys[0]))) ?? 0);
  }

  appendLogEntry(entry: Uint8Array): Promise<number> {
    return appendEntry(this, entry);
  }

  async logEntries(start: number, end: number): Promise<Buffer[]> {
    const last = Math.min(end, await this.logSize());
    if (last <= start) return [];
    const fields = Array.from({ length: last - start }, (_, i) => String(start + i));
    const got = await this.#run(() => this.#r.hmgetBuffer(this.#keys[1], ...fields));
    return got.filter((e): e is Buffer => e !== null);
  }

  logHashes: HashReader = async (wanted) => {
    if (!wanted.length) return [];
    const got = await this.#run(() => this.#r.hmgetBuffer(this.#keys[2], ...wanted.map(hashKey)));
    return got.map((h, i) => {
      if (!h) throw missingHash(wanted[i]!);
      return h;
    });
  };

  async logIndexOf(leaf: Buffer): Promise<number | undefined> {
    const i = await this.#run(() => this.#r.hget(this.#keys[3], leaf.toString('hex')));
    return i === null ? undefined : Number(i);
  }

  async commitLogEntry(index: number, entry: Buffer, leaf: Buffer, hashes: StoredHash[]): Promise<number | undefined> {
    const pairs = hashes.flatMap((h) => [hashKey(h), h.hash]);
    const r = await this.#run(() => this.#r.mmLogCommit(...this.#keys, String(index), entry, leaf.toString('hex'), ...pairs));
    return r < 0 ? undefined : r;
  }
}
