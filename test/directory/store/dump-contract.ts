import type { Test } from 'tap';
import type { Domain } from '../../../directory/domain.js';
import { storeIsEmpty, type Store, type StoreEntry } from '../../../directory/store/store.js';
import { draft } from './record-contract.js';

const order = (e: StoreEntry) => `${e.kind}:${e.kind === 'record' ? e.record.domain : e.kind === 'meta' ? e.name : e.kind === 'kv' ? e.key : e.index}`;

async function all(s: Store): Promise<StoreEntry[]> {
  const out: StoreEntry[] = [];
  for await (const e of s.entries()) out.push(e);
  return out.sort((a, b) => order(a).localeCompare(order(b)));
}

/**
 * The dump contract (backups, docs/backup.md): every Store yields its whole state as entries,
 * writes them back as they were into another store, and clears itself. `make` returns a
 * fresh, empty store; each call another one.
 */
export function dumpContract(t: Test, make: () => Promise<Store>): void {
  t.test('an empty store yields nothing', async (t) => {
    const s = await make();
    t.same(await all(s), []);
    t.equal(await storeIsEmpty(s), true);
  });

  t.test('every record, secret, meta value and live kv entry goes out and back in as it was; leases do not', async (t) => {
    const a = await make();
    await a.putRecord(draft('a.example'), { secrets: Buffer.from([0, 1, 2, 255]) });
    await a.putRecord(draft('b.example'));
    await a.putRecord(draft('a.example', { formats: ['smime'] })); // a.example moves past b.example: a gap at serial 1
    await a.putRecord(draft('c.example'), { secrets: Buffer.from('c') });
    await a.putRecord(draft('c.example', { status: 'deleted' }), { secrets: null }); // a tombstone keeps its place
    await a.setMetaIfAbsent('master-key-check', 'sealed');
    await a.kvPut('pin:x.example', '{"at":"2026"}');
    await a.kvPut('webmail:session:s', 'live', { ttlSec: 3600 });
    await a.kvPut('gone', 'x', { ttlSec: 3600 });
    await a.kvDelete('gone');
    await a.kvIncr('counter', 600_000);
    await a.acquireLease('reverify', 'node-1', 60);
    t.equal(await storeIsEmpty(a), false);

    const out = await all(a);
    t.same(out.map(order), ['kv:counter', 'kv:pin:x.example', 'kv:webmail:session:s', 'meta:master-key-check', 'record:a.example', 'record:b.example', 'record:c.example']);
    const rec = (d: string) => out.find((e) => e.kind === 'record' && e.record.domain === d) as Extract<StoreEntry, { kind: 'record' }>;
    t.equal(rec('a.example').record.serial, 3);
    t.same(rec('a.example').record.formats, ['smime']);
    t.equal(rec('a.example').secrets, Buffer.from([0, 1, 2, 255]).toString('base64'));
    t.equal(rec('b.example').secrets, undefined);
    t.equal(rec('c.example').record.status, 'deleted');
    t.equal(rec('c.example').secrets, undefined, 'secrets removed with the tombstone stay removed');
    const session = out.find((e) => e.kind === 'kv' && e.key === 'webmail:session:s') as Extract<StoreEntry, { kind: 'kv' }>;
    t.ok(session.expiresAt! > Date.now() + 3_500_000 && session.expiresAt! <= Date.now() + 3_600_000, 'a kv entry keeps its expiry');
    t.equal((out.find((e) => e.kind === 'kv' && e.key === 'pin:x.example') as { expiresAt?: number }).expiresAt, undefined, 'a lasting entry has none');

    const b = await make();
    for (const e of out) await b.restoreEntry(e);
    t.same(await all(b), out, 'the copy yields the same entries');
    t.same(await b.listSince(0, 100), await a.listSince(0, 100), 'records in the same serial order');
    t.equal(await b.serial(), await a.serial(), 'the store-wide serial');
    t.same(await b.getSecrets('a.example' as Domain), Buffer.from([0, 1, 2, 255]));
    t.equal(await b.kvGet('webmail:session:s'), 'live');
    t.equal((await b.kvIncr('counter', 600_000)).count, 2, 'a counter goes on counting');
    t.equal(await b.acquireLease('reverify', 'node-2', 60), true, 'no lease came along');
    t.equal((await b.putRecord(draft('d.example'))).serial, (await a.serial()) + 1, 'the next write takes the next serial');
  });

  t.test('clear removes everything, leases too', async (t) => {
    const s = await make();
    await s.putRecord(draft('a.example'), { secrets: Buffer.from('s') });
    await s.setMetaIfAbsent('m', 'v');
    await s.kvPut('k', 'v');
    await s.acquireLease('l', 'node-1', 60);
    await s.clear();
    t.equal(await storeIsEmpty(s), true);
    t.equal(await s.getRecord('a.example' as Domain), undefined);
    t.equal(await s.getSecrets('a.example' as Domain), undefined);
    t.equal(await s.serial(), 0);
    t.equal(await s.acquireLease('l', 'node-2', 60), true);
  });
}
