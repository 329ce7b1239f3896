import type { Test } from 'tap';
import type { Domain } from '../../../directory/domain.js';
import type { RecordDraft } from '../../../directory/record.js';
import type { RecordStore } from '../../../directory/store/store.js';
import { rejectsCode } from '../../helpers.js';

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
 * The record store contract: every RecordStore implementation runs this suite (docs/architecture.md
 * convention 4); the kv side has its own (kv-contract.ts). `make` returns a fresh, empty store.
 */
export function recordStoreContract(t: Test, make: () => Promise<RecordStore>): void {
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

  t.test('records round-trip unicode and large values exactly', async (t) => {
    const s = await make();
    const big = 'x'.repeat(200_000);
    const d = draft('u.example', { provenance: { source: 'imported', verified: 'ünïcødé ✓ "quotes" \\ \n', origin: big, at: 'now' } });
    await s.putRecord(d);
    t.same(await s.getRecord('u.example' as Domain), { ...d, serial: 1 });
  });
}

/**
 * The change feed of a store shared between processes (RecordStore.subscribe): `pair` returns two
 * connections to one fresh store; the second hears the first one's writes, in serial order.
 */
export function subscribeContract(t: Test, pair: () => Promise<[RecordStore, RecordStore]>): void {
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
