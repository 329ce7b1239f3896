import { MailmeshError } from '../errors.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

/**
 * Opens a store from its URL: `sqlite:<path>` (the embedded default), `redis://…` or
 * `rediss://…` (standalone), `redis-sentinel://host:port[,…]/<master>[?db=N]`,
 * `redis-cluster://host:port[,…]` (docs/cluster.md), `memory:`.
 */
export async function openStore(url: string, opts: { redisPrefix: string }): Promise<Store> {
  if (url.startsWith('sqlite:')) return new SqliteStore(url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, ''));
  if (/^(rediss?|redis-sentinel|redis-cluster):\/\//.test(url)) return new RedisStore(url, { prefix: opts.redisPrefix }).connect();
  if (url === 'memory:') return new MemoryStore();
  throw new MailmeshError('CONFIG_INVALID', `store.url: unknown scheme in ${JSON.stringify(url)} (use sqlite:, redis://, rediss://, redis-sentinel://, redis-cluster:// or memory:)`);
}
