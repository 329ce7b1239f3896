import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Directory } from '../../directory/directory.js';
import { RedisStore } from '../../directory/store/redis.js';
import { redisPrefix, TEST_REDIS_URL } from '../helpers.js';
import { kdig, startDns, ZONE } from './dns/helpers.js';
import { get, startHttp } from './http/helpers.js';
import { pollUntil, startRedis } from './store/redis-servers.js';

// Two nodes of one gateway cluster: two Directory instances, each on its own connection to one
// Redis under one prefix, as two processes would be.
const KEYS = { openpgp: 'curve25519' as const, validDays: 365 };

async function node(t: Test, url: string, prefix: string, masterKey: Buffer): Promise<Directory> {
  const store = await new RedisStore(url, { prefix }).connect();
  t.teardown(() => store.close());
  return Directory.open(store, masterKey, { keys: KEYS });
}

async function twoNodes(t: Test, url = TEST_REDIS_URL): Promise<[Directory, Directory]> {
  const prefix = redisPrefix(t, url);
  const masterKey = randomBytes(32);
  return [await node(t, url, prefix, masterKey), await node(t, url, prefix, masterKey)];
}

t.test('a domain added on node 1 is answered by the DNS and HTTP faces of node 2', async (t) => {
  const [one, two] = await twoNodes(t);
  const { port } = await startDns(t, two);
  const { base } = await startHttp(t, two);
  const seen: string[] = [];
  two.on('change', (r) => seen.push(`${r.domain} ${r.serial}`));
  const name = `fresh.example.${ZONE}`;
  t.equal((await kdig(port, [name, 'TYPE61'])).status, 'NXDOMAIN', 'not there before');

  const heard = new Promise<number>((resolve) => two.once('change', () => resolve(Date.now())));
  const added = await one.addDomain('fresh.example');
  const wrote = Date.now();
  const ms = await pollUntil('node 2 to answer over DNS', async () => (await kdig(port, [name, 'TYPE61'])).answers.length === 1);
  t.comment(`node 2 emitted 'change' ${(await heard) - wrote} ms and its DNS face answered (kdig polling) ${ms} ms after node 1's write returned`);
  t.same(seen, [`fresh.example ${added.serial}`], "node 2 emitted 'change' once, with the store's record");
  const res = await get(`${base}/v1/domains/fresh.example`);
  t.equal(res.status, 200);
  t.equal((res.json() as { keys: { openpgp: { fingerprint: string } } }).keys.openpgp.fingerprint, added.keys.openpgp!.fingerprint);

  await one.removeDomain('fresh.example');
  await pollUntil('node 2 to forget it over DNS', async () => (await kdig(port, [name, 'TYPE61'])).status === 'NXDOMAIN');
  t.pass('a removal propagates too');
});

t.test('the HTTP rate limit counts a client once across the nodes (counters in Redis)', async (t) => {
  const [one, two] = await twoNodes(t);
  await one.addDomain('limited.example');
  const config = { rateLimit: { max: 4, windowSec: 60 } };
  const a = await startHttp(t, one, config, { rateCounters: one.store });
  const b = await startHttp(t, two, config, { rateCounters: two.store });
  const alone = await startHttp(t, two, config);
  const statuses = [];
  for (const base of [a.base, b.base, a.base, b.base, a.base, b.base]) statuses.push((await get(`${base}/v1/domains/limited.example`)).status);
  t.same(statuses, [200, 200, 200, 200, 429, 429], 'four requests in all, whichever node they reached');
  const over = await get(`${b.base}/v1/domains/limited.example`);
  t.equal(over.headers['x-ratelimit-limit'], '4');
  t.ok(Number(over.headers['retry-after']) > 0 && Number(over.headers['retry-after']) <= 60, 'Retry-After from the shared window');
  t.equal((await get(`${alone.base}/v1/domains/limited.example`)).status, 200, 'a node counting in memory knows nothing of it');
});

t.test("a node hears its own writes and the others' once each", async (t) => {
  const [one, two] = await twoNodes(t);
  const onOne: number[] = [];
  const onTwo: number[] = [];
  one.on('change', (r) => onOne.push(r.serial));
  two.on('change', (r) => onTwo.push(r.serial));
  const a = await one.addDomain('a.example');
  const b = await two.addDomain('b.example');
  const c = await one.addDomain('c.example');
  await pollUntil('both nodes to hear all three writes', async () => onOne.length >= 3 && onTwo.length >= 3);
  t.same([...onOne].sort(), [a.serial, b.serial, c.serial], 'node 1: its two writes and node 2\'s, once each');
  t.same([...onTwo].sort(), [a.serial, b.serial, c.serial], 'node 2 likewise');
});

t.test('/healthz says 503 while a Redis is down and 200 once it is back', async (t) => {
  const redis = await startRedis(t);
  const [, two] = await twoNodes(t, `redis://127.0.0.1:${redis.port}`);
  const { base } = await startHttp(t, two);
  t.equal((await get(`${base}/healthz`)).status, 200);
  await redis.stop();
  const down = await get(`${base}/healthz`);
  t.equal(down.status, 503);
  t.same(down.json(), { status: 'unavailable', store: 'redis' });
  await redis.start();
  await pollUntil('/healthz to recover', async () => (await get(`${base}/healthz`)).status === 200);
  t.pass('back to 200');
  await two.addDomain('after.example');
  t.ok(await two.findRecord('after.example'), 'and writes work again');
});
