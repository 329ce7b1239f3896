import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { Redis } from 'ioredis';
import { redisPrefix, tempDir, TEST_REDIS_URL } from '../helpers.js';
import type { Answers } from './answers.js';

/** The 0.1.0 store fixtures (test/fixtures/store-0.1.0, made by its make.ts with the 0.1.0 code). */
export const FIXTURE = new URL('../fixtures/store-0.1.0/', import.meta.url).pathname;
export const FIXTURE_DOMAINS = ['alpha.test', 'beta.test'];

export function recorded(kind: 'sqlite' | 'redis'): Record<string, Answers> {
  return JSON.parse(readFileSync(join(FIXTURE, kind, 'answers.json'), 'utf8')) as Record<string, Answers>;
}

/** A node's directory: mailmesh.yaml (store, master key file, no demo domain) and nothing else. */
export function nodeDir(t: Test, store: string, masterKey?: string): string {
  const dir = tempDir(t);
  if (masterKey) copyFileSync(masterKey, join(dir, 'master.key'));
  writeFileSync(join(dir, 'mailmesh.yaml'), `dataDir: ./data\nmasterKey: { file: ./master.key }\nstore: ${store}\ndemo: { domain: '' }\n`);
  return dir;
}

/** A node on a copy of the 0.1.0 SQLite fixture. */
export function sqliteFixtureNode(t: Test): string {
  const dir = nodeDir(t, '{ url: "sqlite:./store.db" }', join(FIXTURE, 'master.key'));
  copyFileSync(join(FIXTURE, 'sqlite/store.db'), join(dir, 'store.db'));
  return dir;
}

/** A node on the 0.1.0 Redis fixture, loaded under a prefix of its own (removed when the test ends). */
export async function redisFixtureNode(t: Test): Promise<string> {
  const prefix = redisPrefix(t);
  const keys = JSON.parse(readFileSync(join(FIXTURE, 'redis/keys.json'), 'utf8')) as Record<string, { type: string; value: unknown; pttl?: number }>;
  const r = new Redis(TEST_REDIS_URL);
  try {
    for (const [k, e] of Object.entries(keys)) {
      const key = prefix + k;
      if (e.type === 'string') await r.set(key, Buffer.from(e.value as string, 'base64'));
      else if (e.type === 'hash') await r.hset(key, e.value as Record<string, string>);
      else if (e.type === 'zset') await r.zadd(key, ...(e.value as string[]).flatMap((_, i, a) => (i % 2 ? [] : [a[i + 1]!, a[i]!])));
      else throw new Error(`fixture key ${k}: unknown type ${e.type}`);
      if (e.pttl) await r.pexpire(key, e.pttl);
    }
  } finally {
    r.disconnect();
  }
  return nodeDir(t, `{ url: "${TEST_REDIS_URL}", redisPrefix: "${prefix}" }`, join(FIXTURE, 'master.key'));
}
