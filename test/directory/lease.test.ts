import t, { type Test } from 'tap';
import { runWhileLeader, type Leader } from '../../directory/lease.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { RedisStore } from '../../directory/store/redis.js';
import type { Store } from '../../directory/store/store.js';
import { redisPrefix, TEST_REDIS_URL } from '../helpers.js';

/** A leader whose work counts starts and stops; the timer is left to tick() calls of the test (long TTL). */
function node(store: Store, owner: string, t: Test) {
  const work = { starts: 0, stops: 0 };
  const l = runWhileLeader({ store, name: 'reverify', owner, ttlSec: 3600, start: () => (work.starts++, () => void work.stops++) });
  t.teardown(() => l.stop());
  return { l, work };
}

t.test('two nodes on one store: one runs the work; the other takes over when the lease expires or is released', async (t) => {
  let now = 0;
  const store = new MemoryStore({ clock: () => now });
  const a = node(store, 'a', t);
  await a.l.tick();
  const b = node(store, 'b', t);
  await b.l.tick();
  t.same([a.l.running, b.l.running], [true, false], 'a took the lease first');
  await a.l.tick();
  t.equal(a.work.starts, 1, 'renewing does not restart the work');

  now += 3600_000; // a stopped renewing (say it hangs): its lease runs out
  await b.l.tick();
  t.equal(b.l.running, true, 'b takes over');
  await a.l.tick();
  t.equal(a.l.running, false, 'a finds the lease gone and stops its work');
  t.same(a.work, { starts: 1, stops: 1 });

  await b.l.stop();
  t.equal(b.work.stops, 1, 'stop() stops the work');
  await a.l.tick();
  t.equal(a.l.running, true, 'b released the lease: a runs again at once');
});

t.test('a store that does not answer: the work stops', async (t) => {
  const store = new MemoryStore();
  const errors: unknown[] = [];
  let fail = false;
  const flaky = Object.assign(Object.create(store) as Store, {
    acquireLease: (n: string, o: string, s: number) => (fail ? Promise.reject(new Error('down')) : store.acquireLease(n, o, s)),
  });
  const l: Leader = runWhileLeader({ store: flaky, name: 'x', owner: 'a', ttlSec: 3600, start: () => () => {}, onError: (e) => errors.push(e) });
  t.teardown(() => l.stop());
  await l.tick();
  t.equal(l.running, true);
  fail = true;
  await l.tick();
  t.equal(l.running, false);
  t.equal(errors.length, 1);
});

t.test('on Redis: of two nodes exactly one runs the work', async (t) => {
  const prefix = redisPrefix(t);
  const stores = await Promise.all([0, 1].map(() => new RedisStore(TEST_REDIS_URL, { prefix }).connect()));
  t.teardown(async () => {
    for (const s of stores) await s.close();
  });
  const nodes = stores.map((s, i) => node(s, `node-${i}`, t));
  await Promise.all(nodes.map((n) => n.l.tick()));
  await Promise.all(nodes.map((n) => n.l.tick()));
  t.equal(nodes.filter((n) => n.l.running).length, 1);
  const holder = nodes.find((n) => n.l.running)!;
  const other = nodes.find((n) => !n.l.running)!;
  await holder.l.stop();
  await other.l.tick();
  t.equal(other.l.running, true, 'the other node takes over after a release');
});
