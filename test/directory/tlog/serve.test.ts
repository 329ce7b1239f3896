import t, { type Test } from 'tap';
import { leafHash, verifyConsistency, verifyInclusion } from '../../../directory/tlog/merkle.js';
import { openNote, parseCheckpoint, parseVerifierKey, type Checkpoint } from '../../../directory/tlog/note.js';
import { decodeEntryBundle } from '../../../directory/tlog/tiles.js';
import { LOG_KEY_LABEL } from '../../../directory/dns/zone.js';
import { kdig, rdataOf, startDns } from '../dns/helpers.js';
import { get, memoryDirectory, startHttp } from '../http/helpers.js';
import { referenceRoot } from '../store/log-contract.js';

// The transparency log served over real HTTP (port 0), read and checked as an outside verifier
// would: from the vkey, the checkpoint, the entry bundles and the proofs, with merkle.ts and
// note.ts's verifiers and a tree rebuilt here from the entries (log-contract.ts referenceRoot).
const ORIGIN = 'dir.mailmesh.test/log';
const directory = await memoryDirectory(undefined, { log: { origin: ORIGIN } });
const { base } = await startHttp(t, directory);

const info = async () => (await get(`${base}/v1/log`)).json() as { origin: string; vkey: string; size: number; checkpoint: string };
const b64 = (s: string) => Buffer.from(s, 'base64');

/** The checkpoint served, its signature checked with the vkey. */
async function checkpoint(t: Test, vkey: string, note?: string): Promise<Checkpoint> {
  const text = note ?? (await get(`${base}/log/checkpoint`)).text;
  const opened = openNote(text, [parseVerifierKey(vkey)]);
  t.same(opened.verifiedBy, [ORIGIN], 'the checkpoint is signed by the log key');
  return parseCheckpoint(opened.text);
}

/** Every entry of a tree of `size` (< 256 here), from the partial entry bundle. */
async function entries(t: Test, size: number): Promise<Buffer[]> {
  const r = await get(`${base}/log/tile/entries/000.p/${size}`);
  t.equal(r.status, 200);
  return decodeEntryBundle(r.body, size);
}

t.test('after joins and rolls the checkpoint is the tree of the served entries, and every record proves into it', async (t) => {
  await directory.addDomain('a.mailmesh.test');
  await directory.addDomain('b.mailmesh.test');
  const { vkey, origin, size: first } = await info();
  t.equal(origin, ORIGIN);
  t.equal(first, 2, 'one entry per published version');
  const before = await checkpoint(t, vkey);

  await directory.announceRoll('a.mailmesh.test');
  await directory.finishRoll('a.mailmesh.test', { now: true });
  await directory.revokeKeys('b.mailmesh.test', 'superseded');
  await directory.addDomain('c.mailmesh.test');
  await directory.removeDomain('c.mailmesh.test');
  await directory.resign('a.mailmesh.test');
  const cp = await checkpoint(t, vkey);
  t.equal(cp.origin, ORIGIN);
  t.equal(cp.size, 8, 'two joins, a roll (two versions), a revocation, a join and a removal, a re-signing');
  const all = await entries(t, cp.size);
  t.equal(referenceRoot(all).toString('hex'), cp.rootHash.toString('hex'), 'the root is the tree of the served entries');
  const tile = await get(`${base}/log/tile/0/000.p/${cp.size}`);
  t.same(tile.body, Buffer.concat(all.map((e) => leafHash(e))), 'the level-0 tile holds their leaf hashes');
  t.match(JSON.parse(all[6]!.toString()), { payload: /"type":"mailmesh.removed"/ }, 'a removal is logged as the directory\'s statement');
  t.notOk('signature' in JSON.parse(all[6]!.toString()));

  for (const d of ['a.mailmesh.test', 'b.mailmesh.test']) {
    const r = (await get(`${base}/v1/domains/${d}`)).json() as { signed: { payload: string; signature: string }; transparency: { leafIndex: number; inclusionProof: string[]; checkpoint: string } };
    const tr = r.transparency;
    const entry = all[tr.leafIndex]!;
    t.same(JSON.parse(entry.toString('utf8')), r.signed, `${d}: the entry at leafIndex is the signed record served`);
    const inside = await checkpoint(t, vkey, tr.checkpoint);
    t.ok(verifyInclusion(tr.leafIndex, inside.size, leafHash(entry), tr.inclusionProof.map(b64), inside.rootHash), `${d}: the inclusion proof verifies`);
    t.notOk(verifyInclusion(tr.leafIndex, inside.size, leafHash(Buffer.from('other')), tr.inclusionProof.map(b64), inside.rootHash), `${d}: not for another entry`);
  }

  const proof = (await get(`${base}/v1/log/consistency?old=${before.size}&new=${cp.size}`)).json() as { proof: string[] };
  t.ok(verifyConsistency(before.size, cp.size, before.rootHash, cp.rootHash, proof.proof.map(b64)), 'the earlier checkpoint is a prefix of the later');
  t.notOk(verifyConsistency(before.size, cp.size, Buffer.alloc(32), cp.rootHash, proof.proof.map(b64)), 'and not of another root');
});

t.test('tiles: full ones are immutable and stay the same; partial ones are short-lived', async (t) => {
  const start = await directory.log!.size();
  for (let i = start; i < 300; i++) await directory.store.appendLogEntry(Buffer.from(`filler ${i}`));
  const { vkey } = await info();
  const cp = await checkpoint(t, vkey);
  t.equal(cp.size, 300);
  const full = await get(`${base}/log/tile/0/000`);
  t.equal(full.status, 200);
  t.equal(full.body.length, 256 * 32, 'a full tile is 8,192 bytes');
  t.equal(full.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.equal(full.headers['content-type'], 'application/octet-stream');
  const bundle = await get(`${base}/log/tile/entries/000`);
  t.equal(bundle.headers['cache-control'], 'public, max-age=31536000, immutable');
  const first = decodeEntryBundle(bundle.body, 256);
  const partial = await get(`${base}/log/tile/0/001.p/44`);
  t.equal(partial.headers['cache-control'], 'public, max-age=60');
  t.equal(partial.body.length, 44 * 32);
  const level1 = await get(`${base}/log/tile/1/000.p/1`);
  t.same(level1.body, referenceRoot(first), 'the level-1 tile holds the root of the first full tile');
  const rest = decodeEntryBundle((await get(`${base}/log/tile/entries/001.p/44`)).body, 44);
  t.equal(referenceRoot([...first, ...rest]).toString('hex'), cp.rootHash.toString('hex'), 'the checkpoint is the tree of both bundles');

  for (let i = 300; i < 320; i++) await directory.store.appendLogEntry(Buffer.from(`filler ${i}`));
  t.same((await get(`${base}/log/tile/0/000`)).body, full.body, 'the full tile did not change');
  t.same((await get(`${base}/log/tile/entries/000`)).body, bundle.body, 'nor the full bundle');
  t.same((await get(`${base}/log/tile/0/001.p/44`)).body, partial.body, 'a partial tile of a width served before is the same');
});

t.test('bad paths and sizes: stable codes', async (t) => {
  const size = await directory.log!.size();
  const code = async (path: string) => {
    const r = await get(base + path);
    return `${r.status} ${(r.json() as { error: { code: string } }).error.code}`;
  };
  t.equal(await code('/log/tile/0/0000'), '400 BAD_REQUEST', 'not 3 digits');
  t.equal(await code('/log/tile/0/000.p/256'), '400 TLOG_INVALID', 'a partial tile is narrower than 256');
  t.equal(await code('/log/tile/0/x000/001'), '400 TLOG_INVALID', 'not the canonical spelling');
  t.equal(await code('/log/tile/64/000'), '400 TLOG_INVALID', 'no level above 63');
  t.equal(await code('/log/tile/0/009'), '404 NOT_FOUND', 'a tile beyond the tree');
  t.equal(await code('/log/tile/entries/001'), '404 NOT_FOUND', 'a full bundle the tree does not have yet');
  t.equal(await code(`/v1/log/consistency?old=2&new=${size + 1}`), '400 TLOG_SIZE_INVALID', 'a size beyond the log');
  t.equal(await code('/v1/log/consistency?old=5&new=2'), '400 TLOG_SIZE_INVALID', 'old after new');
  t.equal(await code('/v1/log/consistency?old=0&new=2'), '400 BAD_REQUEST', 'size 0 has no proof');

  const plain = await memoryDirectory();
  const other = await startHttp(t, plain);
  t.equal((await get(`${other.base}/log/checkpoint`)).status, 404, 'a directory without a log');
  t.equal(((await get(`${other.base}/v1/log`)).json() as { error: { code: string } }).error.code, 'TLOG_DISABLED');
  await plain.addDomain('d.mailmesh.test');
  t.notOk('transparency' in ((await get(`${other.base}/v1/domains/d.mailmesh.test`)).json() as object), 'its records carry no transparency member');
});

t.test('the vkey is published in DNS at _mailmesh-log.<zone>', async (t) => {
  const { vkey } = await info();
  const { port } = await startDns(t, directory);
  const dig = await kdig(port, [`${LOG_KEY_LABEL}.dir.mailmesh.test`, 'TXT']);
  t.equal(dig.status, 'NOERROR');
  t.equal(dig.answers.length, 1);
  t.equal(rdataOf(dig.answers[0]!), `"v=mmlog1; vkey=${vkey}"`);
});

t.test('records held before the log existed are logged when a directory with a log first opens the store', async (t) => {
  const [{ Directory }, { MemoryStore }, { randomBytes }] = await Promise.all([import('../../../directory/directory.js'), import('../../../directory/store/memory.js'), import('node:crypto')]);
  const store = new MemoryStore();
  const key = randomBytes(32);
  const keys = { openpgp: 'curve25519' as const, validDays: 365 };
  const before = await Directory.open(store, key, { keys });
  const r = await before.addDomain('e.mailmesh.test');
  t.equal(await store.logSize(), 0, 'no log, nothing logged');
  const after = await Directory.open(store, key, { keys, log: { origin: ORIGIN } });
  t.equal(await store.logSize(), 1, 'the held record is logged');
  const tr = await after.log!.prove(r);
  t.equal(tr?.leafIndex, 0);
  const again = await Directory.open(store, key, { keys, log: { origin: 'other.test/log' } });
  t.equal(await store.logSize(), 1, 'once: a second opening appends nothing');
  t.equal(await again.log!.origin(), ORIGIN, 'the origin kept with the key wins over a later one');
  t.equal(await again.log!.verifierKey(), await after.log!.verifierKey(), 'one key per store');
});

t.test('a record written by a node without the log is logged at the next open; one too large is skipped, served without a proof, and the directory still opens', async (t) => {
  const [{ Directory }, { MemoryStore }, { randomBytes }] = await Promise.all([import('../../../directory/directory.js'), import('../../../directory/store/memory.js'), import('node:crypto')]);
  const store = new MemoryStore();
  const key = randomBytes(32);
  const keys = { openpgp: 'curve25519' as const, validDays: 365 };
  const logged = await Directory.open(store, key, { keys, log: { origin: ORIGIN } });
  await logged.addDomain('f.mailmesh.test');
  t.equal(await store.logSize(), 1);
  // An older node of a rolling upgrade (no log) writes after the log's first backfill.
  const old = await Directory.open(store, key, { keys });
  const late = await old.addDomain('g.mailmesh.test');
  // A held record whose entry is over 65,535 bytes (written straight into the store).
  const big = await old.addDomain('h.mailmesh.test');
  const huge = { ...big, signed: { payload: JSON.stringify({ pad: 'x'.repeat(70_000) }), signature: 'sig' } };
  await store.putRecord(huge, { ifSerial: big.serial });
  const next = await Directory.open(store, key, { keys, log: { origin: ORIGIN } });
  t.same(next.logSkipped, ['h.mailmesh.test'], 'the record too large to log is named, and the directory opened');
  t.equal((await next.log!.prove(late))?.leafIndex, 1, 'the record the older node wrote is logged');
  const { base: b2 } = await startHttp(t, next);
  const served = (await get(`${b2}/v1/domains/h.mailmesh.test`)).json() as { domain: string; transparency?: unknown };
  t.equal(served.domain, 'h.mailmesh.test', 'still served');
  t.equal(served.transparency, undefined, 'without a proof');
});
