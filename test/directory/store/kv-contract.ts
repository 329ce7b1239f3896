import type { Test } from 'tap';
import type { KvStore } from '../../../directory/store/store.js';
import { pollUntil } from './redis-servers.js';

/**
 * The kv store contract: every KvStore implementation runs this suite (docs/architecture.md
 * convention 4); the record side has its own (record-contract.ts). `make` returns a fresh,
 * empty store; `clocked`, where the store takes a clock, one whose clock the test moves
 * (counter and lease expiry); without it expiry is seen on a short real TTL.
 */
export function kvStoreContract(t: Test, make: () => Promise<KvStore>, clocked?: () => Promise<{ store: KvStore; advance(ms: number): void }>): void {
  t.test('an empty kv store', async (t) => {
    const s = await make();
    t.equal(await s.kvGet('nope'), undefined);
    await s.ping();
  });

  t.test('kv values are mutable, set-if-absent, deletable', async (t) => {
    const s = await make();
    t.equal(await s.kvGet('k'), undefined);
    t.equal(await s.kvPut('k', 'one', { ifAbsent: true }), true);
    t.equal(await s.kvPut('k', 'two', { ifAbsent: true }), false);
    t.equal(await s.kvGet('k'), 'one');
    t.equal(await s.kvPut('k', 'three', { ttlSec: 3600 }), true);
    t.equal(await s.kvGet('k'), 'three');
    await s.kvDelete('k');
    t.equal(await s.kvGet('k'), undefined);
    t.equal(await s.kvPut('k', 'four', { ifAbsent: true, ttlSec: 3600 }), true);
    t.equal(await s.kvGet('k'), 'four');
    await s.kvDelete('never-set');
  });

  t.test('counters: atomic increments, a fixed or sliding life, read and reset through kv', async (t) => {
    const s = await make();
    const first = await s.kvIncr('c', 60_000);
    t.equal(first.count, 1);
    t.ok(first.ttlMs > 59_000 && first.ttlMs <= 60_000, `a new counter lives ttlMs (${first.ttlMs})`);
    const many = await Promise.all(Array.from({ length: 50 }, () => s.kvIncr('c', 60_000)));
    t.same(many.map((r) => r.count).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 2), 'concurrent increments each get their own count');
    t.equal(await s.kvGet('c'), '51', 'kv reads the count');
    const fixed = await s.kvIncr('c', 3_600_000);
    t.ok(fixed.ttlMs <= 60_000, 'without slide the life set at the start stays');
    const slid = await s.kvIncr('c', 3_600_000, { slide: true });
    t.equal(slid.count, 53);
    t.ok(slid.ttlMs > 60_000, 'slide gives a new life');
    await s.kvDelete('c');
    t.equal((await s.kvIncr('c', 60_000)).count, 1, 'deleted: counts from 1 again');
    t.equal((await s.kvIncr('other', 60_000)).count, 1, 'counters are independent');
    for (const junk of ['{"n":5}', '3.9', 'x', '']) {
      await s.kvPut('junk', junk);
      const r = await s.kvIncr('junk', 60_000);
      t.same([r.count, await s.kvGet('junk')], [1, '1'], `a key holding ${JSON.stringify(junk)} starts again at 1`);
      t.ok(r.ttlMs > 59_000 && r.ttlMs <= 60_000, 'with a new life');
    }
  });

  t.test('counters expire', async (t) => {
    if (clocked) {
      const { store, advance } = await clocked();
      await store.kvIncr('c', 10_000);
      advance(5_000);
      t.same(await store.kvIncr('c', 10_000), { count: 2, ttlMs: 5_000 }, 'the window set by the first increment');
      advance(5_000);
      t.same(await store.kvIncr('c', 10_000), { count: 1, ttlMs: 10_000 }, 'expired: a new window');
      await store.kvIncr('d', 10_000, { slide: true });
      advance(9_000);
      await store.kvIncr('d', 10_000, { slide: true });
      advance(9_000);
      t.equal((await store.kvIncr('d', 10_000, { slide: true })).count, 3, 'a sliding counter lives on while it is used');
      t.equal(await store.kvGet('d'), '3');
      advance(10_000);
      t.equal(await store.kvGet('d'), undefined, 'and expires ttlMs after the last increment');
      return;
    }
    const s = await make();
    await s.kvIncr('c', 200);
    await pollUntil('the counter to expire', async () => (await s.kvGet('c')) === undefined);
    t.equal((await s.kvIncr('c', 60_000)).count, 1, 'expired: counts from 1 again');
  });

  t.test('leases: one owner at a time, renewed by its owner, released only by it', async (t) => {
    const s = await make();
    const [a, b] = await Promise.all([s.acquireLease('reverify', 'node-a', 60), s.acquireLease('reverify', 'node-b', 60)]);
    t.ok(a !== b, 'exactly one of two concurrent owners wins');
    const [win, lose] = a ? ['node-a', 'node-b'] : ['node-b', 'node-a'];
    t.equal(await s.acquireLease('reverify', lose, 60), false, 'the other owner is refused');
    t.equal(await s.acquireLease('reverify', win, 60), true, 'the owner renews');
    t.equal(await s.acquireLease('mirror', lose, 60), true, 'another lease is independent');
    await s.releaseLease('reverify', lose);
    t.equal(await s.acquireLease('reverify', lose, 60), false, 'a release by another owner does nothing');
    await s.releaseLease('reverify', win);
    t.equal(await s.acquireLease('reverify', lose, 60), true, 'released: the other owner takes it');
    await s.releaseLease('never-taken', win);
  });

  t.test('leases expire', async (t) => {
    if (clocked) {
      const { store, advance } = await clocked();
      t.equal(await store.acquireLease('l', 'a', 10), true);
      advance(9_999);
      t.equal(await store.acquireLease('l', 'b', 10), false, 'still held');
      advance(1);
      t.equal(await store.acquireLease('l', 'b', 10), true, 'expired: another owner takes it');
      t.equal(await store.acquireLease('l', 'a', 10), false);
      return;
    }
    const s = await make();
    t.equal(await s.acquireLease('l', 'a', 0.2), true);
    // A bounded poll on a short real TTL; no assertion on how long it took.
    await pollUntil('the lease to expire', () => s.acquireLease('l', 'b', 60));
    t.equal(await s.acquireLease('l', 'a', 60), false, 'now held by the other owner');
  });
}
