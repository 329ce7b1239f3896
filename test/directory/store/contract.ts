import type { Test } from 'tap';
import type { Domain } from '../../../directory/domain.js';
import type { RecordDraft } from '../../../directory/record.js';
import type { Store } from '../../../directory/store/store.js';
import { rejectsCode } from '../../helpers.js';
import { pollUntil } from './redis-servers.js';

export function draft(domain: string, over: Partial<RecordDraft> = {}): RecordDraft {
  return {
    domain: domain as Domain,
    keys: {},
    gateways: { smtp: ['mx.' + domain + ':25'] },
    formats: ['pgp-mime'],
    validity: { notBefore: '2026-01-01T00:00:00.000Z', notAfter: null },
    updated: '2026-01-01T00:00:00.000Z',
    status: 'active',
    provenance: { source: 'local', verified: 'test', at: '2026-01-01T00:00:00.000Z' },
    ...over,
  };
}

/**
 * The store contract: every Store implementation runs this suite (docs/architecture.md convention 4).
 * `make` returns a fresh, empty store; `clocked`, where the store takes a clock, one whose
 * clock the test moves (lease expiry); without it expiry is seen on a short real TTL.
 */
export function storeContract(t: Test, make: () => Promise<Store>, clocked?: () => Promise<{ store: Store; advance(ms: number): void }>): void {
  t.test('an empty store', async (t) => {
    const s = await make();
    t.equal(await s.serial(), 0);
    t.equal(await s.getRecord('nope.example' as Domain), undefined);
    t.equal(await s.getSecrets('nope.example' as Domain), undefined);
    t.same(await s.listSince(0, 10), []);
    await s.ping();
  });

  t.test('put and get keep the record and give it a serial', async (t) => {
    const s = await make();
    const r = await s.putRecord(draft('a.example'), { secrets: Buffer.from([0, 1, 2, 255]) });
    t.equal(r.serial, 1);
    t.same(await s.getRecord('a.example' as Domain), { ...draft('a.example'), serial: 1 });
    t.same(await s.getSecrets('a.example' as Domain), Buffer.from([0, 1, 2, 255]));
    t.equal(await s.serial(), 1);
  });

  t.test('serials only grow, across domains and rewrites', async (t) => {
    const s = await make();
    const a1 = await s.putRecord(draft('a.example'));
    const b1 = await s.putRecord(draft('b.example'));
    const a2 = await s.putRecord(draft('a.example', { formats: ['smime'] }));
    t.ok(a1.serial < b1.serial && b1.serial < a2.serial, `${a1.serial} < ${b1.serial} < ${a2.serial}`);
    t.equal(await s.serial(), a2.serial);
    const all = await s.listSince(0, 10);
    t.same(all.map((r) => [r.domain, r.serial]), [['b.example', b1.serial], ['a.example', a2.serial]]);
    t.same((await s.listSince(b1.serial, 10)).map((r) => r.domain), ['a.example']);
    t.same((await s.listSince(0, 1)).map((r) => r.domain), ['b.example'], 'limit');
    t.same(await s.listSince(a2.serial, 10), []);
  });

  t.test('compare-and-set: create only once, update only from the serial read', async (t) => {
    const s = await make();
    const r = await s.putRecord(draft('a.example'), { ifSerial: null });
    await rejectsCode(t, s.putRecord(draft('a.example'), { ifSerial: null }), 'DOMAIN_EXISTS');
    await rejectsCode(t, s.putRecord(draft('a.example'), { ifSerial: r.serial + 5 }), 'SERIAL_CONFLICT');
    await rejectsCode(t, s.putRecord(draft('new.example'), { ifSerial: 3 }), 'SERIAL_CONFLICT');
    const before = await s.serial();
    t.equal(before, r.serial, 'a refused write takes no serial');
    const r2 = await s.putRecord(draft('a.example', { formats: ['smime'] }), { ifSerial: r.serial });
    t.same(r2.formats, ['smime']);
    await rejectsCode(t, s.putRecord(draft('a.example'), { ifSerial: r.serial }), 'SERIAL_CONFLICT', 'a stale serial');
    t.same((await s.getRecord('a.example' as Domain))!.formats, ['smime'], 'the refused write changed nothing');
  });

  t.test('a tombstone can be re-created; secrets can be deleted with it', async (t) => {
    const s = await make();
    const r = await s.putRecord(draft('a.example'), { secrets: Buffer.from('k') });
    const dead = await s.putRecord(draft('a.example', { status: 'deleted' }), { ifSerial: r.serial, secrets: null });
    t.equal(await s.getSecrets('a.example' as Domain), undefined);
    t.equal((await s.getRecord('a.example' as Domain))!.status, 'deleted');
    const again = await s.putRecord(draft('a.example'), { ifSerial: null, secrets: Buffer.from('k2') });
    t.ok(again.serial > dead.serial);
    t.same(await s.getSecrets('a.example' as Domain), Buffer.from('k2'));
    const kept = await s.putRecord(draft('a.example', { formats: ['smime'] }));
    t.same(await s.getSecrets('a.example' as Domain), Buffer.from('k2'), 'a write without secrets keeps them');
    t.equal(kept.status, 'active');
  });

  t.test('concurrent creates of one domain: exactly one wins', async (t) => {
    const s = await make();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => s.putRecord(draft('race.example'), { ifSerial: null })));
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    t.equal(await s.serial(), 1);
  });

  t.test('concurrent writes to many domains get distinct serials', async (t) => {
    const s = await make();
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => s.putRecord(draft(`d${i}.example`))));
    t.equal(new Set(rs.map((r) => r.serial)).size, 50);
    t.equal(await s.serial(), 50);
    const listed = await s.listSince(0, 100);
    t.equal(listed.length, 50);
    t.same(listed.map((r) => r.serial), [...listed.map((r) => r.serial)].sort((a, b) => a - b));
  });

  t.test('meta values are set once', async (t) => {
    const s = await make();
    t.equal(await s.getMeta('x'), undefined);
    t.equal(await s.setMetaIfAbsent('x', 'first'), 'first');
    t.equal(await s.setMetaIfAbsent('x', 'second'), 'first');
    t.equal(await s.getMeta('x'), 'first');
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

  t.test('records round-trip unicode and large values exactly', async (t) => {
    const s = await make();
    const big = 'x'.repeat(200_000);
    const d = draft('u.example', { provenance: { source: 'imported', verified: 'ünïcødé ✓ "quotes" \\ \n', origin: big, at: 'now' } });
    await s.putRecord(d);
    t.same(await s.getRecord('u.example' as Domain), { ...d, serial: 1 });
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

/**
 * The change feed of a store shared between processes (Store.subscribe): `pair` returns two
 * connections to one fresh store; the second hears the first one's writes, in serial order.
 */
export function subscribeContract(t: Test, pair: () => Promise<[Store, Store]>): void {
  t.test('subscribe() hears the writes of another connection', async (t) => {
    const [writer, reader] = await pair();
    const heard: { domain: string; serial: number }[] = [];
    let done: () => void;
    const got = new Promise<void>((resolve) => (done = resolve));
    await reader.subscribe!((c) => {
      if (c) heard.push(c);
      if (heard.length === 2) done();
    });
    await writer.putRecord(draft('a.example'));
    await writer.putRecord(draft('b.example'));
    await alive(got);
    t.same(heard, [{ domain: 'a.example', serial: 1 }, { domain: 'b.example', serial: 2 }]);
  });
}

/**
 * Waits for `p` with the process kept alive: a store's poll timer is unref'd (it keeps no
 * server alive), so a test that only waits for its callback would otherwise end early.
 */
export async function alive<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 60_000);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}
