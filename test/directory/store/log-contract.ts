import { createHash } from 'node:crypto';
import type { Test } from 'tap';
import type { LogStore } from '../../../directory/store/log.js';
import type { Store, StoreEntry } from '../../../directory/store/store.js';
import { leafHash, treeHash } from '../../../directory/tlog/merkle.js';
import { rejectsCode } from '../../helpers.js';

const sha = (...parts: Uint8Array[]) => createHash('sha256').update(Buffer.concat(parts)).digest();

/** RFC 9162 §2.1.1 MTH, computed here from the entries alone (not from merkle.ts), to check what the store keeps. */
export function referenceRoot(entries: Uint8Array[]): Buffer {
  if (entries.length === 0) return sha();
  if (entries.length === 1) return sha(Buffer.from([0]), entries[0]!);
  let k = 1;
  while (k * 2 < entries.length) k *= 2;
  return sha(Buffer.from([1]), referenceRoot(entries.slice(0, k)), referenceRoot(entries.slice(k)));
}

const entry = (tag: string, i: number) => Buffer.from(`${tag} entry ${i}`);

async function appendAll(s: LogStore, entries: Buffer[]): Promise<number[]> {
  const out: number[] = [];
  for (const e of entries) out.push(await s.appendLogEntry(e));
  return out;
}

/**
 * The log contract (directory/store/log.ts): append-only, one index per entry, the stored
 * hashes are those of RFC 9162 over the entries, and two connections appending at once do
 * not fork the tree. `make` returns a fresh, empty store; `pair` two connections to one fresh store.
 */
export function logStoreContract(t: Test, make: () => Promise<Store>, pair: () => Promise<[Store, Store]>): void {
  t.test('an empty log has size 0, no entries and the empty root', async (t) => {
    const s = await make();
    t.equal(await s.logSize(), 0);
    t.same(await s.logEntries(0, 10), []);
    t.equal((await treeHash(0, s.logHashes)).toString('hex'), sha().toString('hex'));
  });

  t.test('entries take the next index and read back; a repeated entry keeps its index', async (t) => {
    const s = await make();
    const e = [0, 1, 2].map((i) => entry('a', i));
    t.same(await appendAll(s, e), [0, 1, 2]);
    t.equal(await s.logSize(), 3);
    t.same(await s.logEntries(0, 3), e);
    t.same(await s.logEntries(1, 99), e.slice(1), 'the end is clipped to the size');
    t.equal(await s.appendLogEntry(e[1]!), 1, 'the same bytes again: the index they have');
    t.equal(await s.logSize(), 3, 'nothing appended');
    t.equal(await s.logIndexOf(leafHash(e[2]!)), 2);
    t.equal(await s.logIndexOf(leafHash(Buffer.from('never logged'))), undefined);
    await rejectsCode(t, s.appendLogEntry(Buffer.alloc(65_536)), 'TLOG_ENTRY_TOO_LARGE');
    t.ok(await s.appendLogEntry(Buffer.alloc(65_535, 1)), 'the largest entry a bundle carries');
  });

  t.test('the stored hashes make the RFC 9162 tree of the entries, across a tile boundary', async (t) => {
    const s = await make();
    const e = Array.from({ length: 300 }, (_, i) => entry('b', i));
    await appendAll(s, e);
    for (const size of [1, 2, 3, 7, 255, 256, 257, 300]) {
      t.equal((await treeHash(size, s.logHashes)).toString('hex'), referenceRoot(e.slice(0, size)).toString('hex'), `root of ${size}`);
    }
    const [full] = await s.logHashes([{ level: 8, index: 0 }]);
    t.equal(full!.toString('hex'), referenceRoot(e.slice(0, 256)).toString('hex'), 'level 8 holds the hash of the first 256 leaves');
    const [leaf] = await s.logHashes([{ level: 0, index: 299 }]);
    t.same(leaf, leafHash(e[299]!));
    await rejectsCode(t, s.logHashes([{ level: 8, index: 1 }]), 'TLOG_HASH_MISSING', 'a subtree not complete yet');
  });

  t.test('two connections appending at once: one tree, every entry once', async (t) => {
    const [a, b] = await pair();
    const ea = Array.from({ length: 40 }, (_, i) => entry('node-a', i));
    const eb = Array.from({ length: 40 }, (_, i) => entry('node-b', i));
    const [ia, ib] = await Promise.all([appendAll(a, ea), appendAll(b, eb)]);
    t.equal(new Set([...ia, ...ib]).size, 80, 'every entry its own index');
    t.equal(await a.logSize(), 80);
    const stored = await b.logEntries(0, 80);
    t.same([...stored].map(String).sort(), [...ea, ...eb].map(String).sort(), 'every entry stored once');
    for (const [i, x] of ia.entries()) t.same(stored[x], ea[i], `node-a entry ${i} is where its append said`);
    t.equal((await treeHash(80, a.logHashes)).toString('hex'), referenceRoot(stored).toString('hex'), 'the hashes are those of the stored order');
  });

  t.test('a backup carries the log; restored, it has the same entries and root', async (t) => {
    const s = await make();
    const e = Array.from({ length: 5 }, (_, i) => entry('c', i));
    await appendAll(s, e);
    const out: StoreEntry[] = [];
    for await (const x of s.entries()) out.push(x);
    const logged = out.filter((x) => x.kind === 'log');
    t.same(logged.map((x) => x.kind === 'log' && x.index), [0, 1, 2, 3, 4], 'in index order');
    const copy = await make();
    for (const x of out) await copy.restoreEntry(x);
    t.same(await copy.logEntries(0, 5), e);
    t.same(await treeHash(5, copy.logHashes), await treeHash(5, s.logHashes));
    await rejectsCode(t, copy.restoreEntry({ kind: 'log', index: 2, entry: Buffer.from('other').toString('base64') }), 'STORE_NOT_EMPTY', 'an entry that would not land at its index');
    await copy.clear();
    t.equal(await copy.logSize(), 0, 'clear empties the log');
  });
}
