import { pino } from 'pino';
import t, { type Test } from 'tap';
import { openPgpKeyOwner } from '../../directory/dane.js';
import { domainKeyAddress, parseDomain } from '../../directory/domain.js';
import { MailmeshError } from '../../directory/errors.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { RedisStore } from '../../directory/store/redis.js';
import type { Store } from '../../directory/store/store.js';
import { StoreDiscoveryCache, type CacheEntry } from '../../federation/cache.js';
import { stubResolver } from '../../federation/dns.js';
import { Discovery, type Discovered } from '../../federation/discovery.js';
import { MemoryPinStore, StorePinStore } from '../../federation/pins.js';
import { redisPrefix, rejectsCode, TEST_REDIS_URL } from '../helpers.js';
import { memoryDirectory, publishOpenPgpKey, startZone, testClock, type TestZone } from './helpers.js';

// The discovery cache in the store's kv space, as the nodes of a cluster share it on Redis.
const clock = testClock();
const zone = await startZone(t);
const peerDir = await memoryDirectory(clock.now);
const beta = await peerDir.addDomain('beta.test', { gateways: { smtp: ['mx.beta.test:25'], https: 'https://beta.test' }, formats: ['pgp-mime', 'smime'] });
// Its `_mailmesh` TXT pins the OpenPGP key only: that is all its DNS publishes.
zone.pin({ ...beta, keys: { openpgp: beta.keys.openpgp } });
await publishOpenPgpKey(zone, openPgpKeyOwner(domainKeyAddress(parseDomain('beta.test'))), beta);

/** Beta's own DNS (its `_mailmesh` pin and OPENPGPKEY) is the only source. */
const sourcesOf = (z: TestZone, timeoutMs = 2000) => ({ resolver: stubResolver([`127.0.0.1:${z.port}`], { timeoutMs }), wellKnownBase: () => 'http://127.0.0.1:1', clock: clock.now, timeoutMs });

/** Every field a Discovered can carry, with real keys (OpenPGP and S/MIME). */
const full: Discovered = {
  domain: parseDomain('beta.test'),
  keys: beta.keys,
  gateways: beta.gateways,
  formats: beta.formats,
  provenance: { source: 'directory-https', verified: 'signature by …', origin: 'https://dir.example', at: '2026-11-28T00:00:00.000Z', trust: 'signed-record' },
  cache: 'miss',
  violation: { domain: 'beta.test', pinned: 'A'.repeat(40), offered: 'B'.repeat(40), source: 'directory-dns', at: '2026-11-28T00:00:01.000Z' },
};

async function redisStore(t: Test, prefix: string): Promise<RedisStore> {
  const store = await new RedisStore(TEST_REDIS_URL, { prefix }).connect();
  t.teardown(() => store.close());
  return store;
}

/** Two connections to one Redis under a fresh prefix (two nodes), removed at the end. */
async function redisNodes(t: Test): Promise<[RedisStore, RedisStore]> {
  const prefix = redisPrefix(t);
  return [await redisStore(t, prefix), await redisStore(t, prefix)];
}

const kinds: [string, (t: Test) => Promise<[Store, Store]>][] = [
  ['memory store', async () => {
    const s = new MemoryStore({ clock: () => clock.now().getTime() });
    return [s, s];
  }],
  ['Redis', redisNodes],
];

for (const [kind, open] of kinds) {
  t.test(`${kind}: an entry round-trips exactly; forget(domain) and forget() reach the other node`, async (t) => {
    const [s1, s2] = await open(t);
    const one = new StoreDiscoveryCache(s1);
    const two = new StoreDiscoveryCache(s2);
    const gamma = parseDomain('gamma.test');
    const entry: CacheEntry = { result: full, expires: 1_000, staleUntil: 2_000 };
    t.equal(await two.get(full.domain), undefined, 'empty at first');
    await one.set(full.domain, entry, 60_000);
    await one.set(gamma, { ...entry, result: { ...full, domain: gamma } }, 60_000);
    t.strictSame(await two.get(full.domain), entry, 'node 2 reads exactly what node 1 wrote');
    t.match(await s2.kvGet('disc:beta.test'), /"fingerprint"/, 'kept under disc:<domain> as JSON');

    await two.delete(full.domain);
    t.equal(await one.get(full.domain), undefined, 'forget(domain) on node 2 reaches node 1');
    t.equal((await one.get(gamma))?.result.domain, 'gamma.test', 'other domains stay');

    await two.clear();
    t.equal(await one.get(gamma), undefined, 'forget() on node 2 reaches node 1');
    await one.set(gamma, entry, 60_000);
    t.strictSame(await two.get(gamma), entry, 'entries written after forget() count');
    await one.clear();
    t.equal(await two.get(gamma), undefined, 'and a second forget() drops them too');

    // An older version wrote its answers without the key trust: they are asked again, never served unclassified.
    const { trust: _, ...unclassified } = full.provenance;
    await one.set(full.domain, { ...entry, result: { ...full, provenance: unclassified } }, 60_000);
    t.equal(await two.get(full.domain), undefined, 'an entry without provenance.trust is a miss');
  });

  t.test(`${kind}: Discovery judges expiry and staleness by its own clock`, async (t) => {
    const [s1, s2] = await open(t);
    const opts = { directories: [], pins: new MemoryPinStore(), cacheTtlMs: 1000, staleMaxMs: 10_000 };
    const up = new Discovery({ ...opts, sources: sourcesOf(zone), cache: new StoreDiscoveryCache(s1) });
    // Node 2 reaches none of the sources: what it serves comes from the shared cache.
    const down = new Discovery({ ...opts, sources: { ...sourcesOf(zone, 300), resolver: stubResolver(['127.0.0.1:1'], { timeoutMs: 300 }) }, directories: [{ url: 'http://127.0.0.1:1' }], cache: new StoreDiscoveryCache(s2) });
    await rejectsCode(t, down.discover('beta.test'), 'LOOKUP_UNAVAILABLE', 'nothing cached yet');

    const first = await up.discover('beta.test');
    t.equal(first.cache, 'miss');
    t.equal(first.keys.openpgp?.fingerprint, beta.keys.openpgp!.fingerprint);
    const hit = await down.discover('beta.test');
    t.strictSame(hit, { ...first, cache: 'hit' }, 'within the TTL: a hit, equal to the answer node 1 got');

    clock.advance(2000);
    t.equal((await down.discover('beta.test')).cache, 'stale', 'past the TTL, sources down: served stale');
    const queries = zone.queries;
    t.equal((await up.discover('beta.test')).cache, 'miss', 'past the TTL, sources up: asked again');
    t.ok(zone.queries > queries);

    clock.advance(20_000);
    await rejectsCode(t, down.discover('beta.test'), 'LOOKUP_UNAVAILABLE', 'past staleMax nothing is served');
  });
}

t.test('the kv entry lives for the TTL plus staleMax', async (t) => {
  const store = new MemoryStore({ clock: () => clock.now().getTime() });
  const d = new Discovery({ sources: sourcesOf(zone), directories: [], pins: new MemoryPinStore(), cacheTtlMs: 1000, staleMaxMs: 10_000, cache: new StoreDiscoveryCache(store) });
  await d.discover('beta.test');
  clock.advance(10_500);
  t.not(await store.kvGet('disc:beta.test'), undefined, 'kept while it may be served stale');
  clock.advance(1000);
  t.equal(await store.kvGet('disc:beta.test'), undefined, 'gone after');
});

t.test('two nodes on one Redis: node 2 gets node 1\'s answer without asking a source; forget reaches it', async (t) => {
  const [s1, s2] = await redisNodes(t);
  const node = (s: Store) => new Discovery({ sources: sourcesOf(zone), directories: [], pins: new StorePinStore(s), cache: new StoreDiscoveryCache(s), cacheTtlMs: 60_000 });
  const one = node(s1);
  const two = node(s2);

  const found = await one.discover('beta.test');
  t.equal(found.cache, 'miss');
  t.equal(found.provenance.source, 'domain-dns');
  t.equal(found.keys.openpgp?.fingerprint, beta.keys.openpgp!.fingerprint);
  const queries = zone.queries;
  const shared = await two.discover('someone@beta.test');
  t.strictSame(shared, { ...found, cache: 'hit' }, 'node 2: a hit with node 1\'s answer');
  t.equal(zone.queries, queries, 'node 2 asked no source');

  await one.forget('beta.test');
  const again = await two.discover('beta.test');
  t.equal(again.cache, 'miss', 'after node 1 forgot the domain, node 2 asks again');
  t.ok(zone.queries > queries);
  t.equal((await one.discover('beta.test')).cache, 'hit', 'and node 1 gets node 2\'s answer');

  await two.forget();
  t.equal((await one.discover('beta.test')).cache, 'miss', 'forget() on node 2 empties node 1\'s cache too');
});

t.test('a store that fails: discovery still answers (a miss every time) and warns', async (t) => {
  const store = new MemoryStore();
  const fail = async (): Promise<never> => {
    throw new MailmeshError('STORE_UNAVAILABLE', 'test');
  };
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
  for (const [what, kv, warning] of [
    ['reads', { kvGet: fail, kvPut: store.kvPut.bind(store), kvDelete: store.kvDelete.bind(store) }, 'discovery cache unreadable: treated as a miss'],
    ['writes', { kvGet: store.kvGet.bind(store), kvPut: fail, kvDelete: store.kvDelete.bind(store) }, 'discovery cache not written'],
  ] as const) {
    warnings.length = 0;
    const d = new Discovery({ sources: sourcesOf(zone), directories: [], pins: new MemoryPinStore(), cache: new StoreDiscoveryCache(kv), logger });
    for (const attempt of [1, 2]) {
      const r = await d.discover('beta.test');
      t.equal(r.cache, 'miss', `${what} fail, attempt ${attempt}: a miss`);
      t.equal(r.keys.openpgp?.fingerprint, beta.keys.openpgp!.fingerprint, 'with the peer\'s key');
    }
    t.ok(warnings.includes(warning), `${what}: "${warning}" logged`);
  }
  const dead = new Discovery({ sources: sourcesOf(zone), directories: [], pins: new MemoryPinStore(), cache: new StoreDiscoveryCache({ kvGet: fail, kvPut: fail, kvDelete: fail }) });
  await rejectsCode(t, dead.forget(), 'STORE_UNAVAILABLE', 'an explicit forget() reports the failure');
  await rejectsCode(t, dead.forget('beta.test'), 'STORE_UNAVAILABLE', 'so does forget(domain)');
});
