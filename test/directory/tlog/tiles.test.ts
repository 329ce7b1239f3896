import t from 'tap';
import { appendHashes, consistencyProof, inclusionProof, leafHash, treeHash, type HashReader } from '../../../directory/tlog/merkle.js';
import {
  decodeEntryBundle,
  encodeEntryBundle,
  entryBundlePath,
  parseTilePath,
  TILE_WIDTH,
  tileHashes,
  tileHashReader,
  tilePath,
  tilesAt,
  type TileId,
} from '../../../directory/tlog/tiles.js';
import { rejectsCode, seeded, throwsCode } from '../../helpers.js';

// C2SP tlog-tiles §"Merkle Tree", §"Partial Tiles" and §"Log entries" (its examples: index 1234067,
// a tree of 70,000 and one of 256).

t.test('tile paths: the spec\'s index groups, partial widths; they parse back', async (t) => {
  const cases: [number, number, number, string][] = [
    [0, 0, 256, 'tile/0/000'],
    [0, 255, 256, 'tile/0/255'],
    [0, 256, 256, 'tile/0/256'],
    [0, 999, 256, 'tile/0/999'],
    [0, 1000, 256, 'tile/0/x001/000'],
    [2, 1234067, 256, 'tile/2/x001/x234/067'],
    [1, 1234067, 17, 'tile/1/x001/x234/067.p/17'],
    [0, 5, 1, 'tile/0/005.p/1'],
    [63, 0, 255, 'tile/63/000.p/255'],
    [0, 1_000_000_000, 256, 'tile/0/x001/x000/x000/000'],
  ];
  for (const [level, index, width, path] of cases) {
    t.equal(tilePath({ level, index, width }), path, path);
    t.same(parseTilePath(path), { level, index, width, entries: false }, `parses ${path}`);
  }
  t.equal(entryBundlePath(1234067, 256), 'tile/entries/x001/x234/067');
  t.equal(entryBundlePath(0, 112), 'tile/entries/000.p/112');
  t.same(parseTilePath('tile/entries/x001/x234/067'), { level: 0, index: 1234067, width: 256, entries: true });
  t.same(parseTilePath('tile/entries/000.p/112'), { level: 0, index: 0, width: 112, entries: true });
  for (let index = 0; index < 3000; index += 7) {
    for (const width of [1, 100, 255, 256]) {
      const p = tilePath({ level: 3, index, width });
      if (!t.same(parseTilePath(p), { level: 3, index, width, entries: false }, p)) break;
    }
  }
});

t.test('paths that are not tiles, or not in the one canonical spelling', async (t) => {
  const bad = [
    'tile/0/00', 'tile/0/0000', 'tile/0/1', 'tile/00/000', 'tile/01/000', 'tile/64/000', 'tile/-1/000',
    'tile/0/x000/001', 'tile/0/x001', 'tile/0/001/002', 'tile/0/X001/000', 'tile/0/x01/000',
    'tile/0/000.p/0', 'tile/0/000.p/256', 'tile/0/000.p/300', 'tile/0/000.p/07', 'tile/0/000.p/', 'tile/0/000.p',
    'tile/entries/000.p/256', 'tile/entries/x000/000', 'tile/entries/0', '/tile/0/000', 'tile/0/000/', 'tile/0/000 ',
    'tile/1/2/000', 'checkpoint', '', 'tile/0/x009/x007/x199/x254/x740/x993/000',
  ];
  for (const p of bad) t.equal(parseTilePath(p), undefined, JSON.stringify(p));
  throwsCode(t, () => tilePath({ level: 0, index: 0, width: 0 }), 'TLOG_INVALID', 'width 0');
  throwsCode(t, () => tilePath({ level: 0, index: 0, width: 257 }), 'TLOG_INVALID', 'width 257');
  throwsCode(t, () => tilePath({ level: 64, index: 0, width: 256 }), 'TLOG_INVALID', 'level 64');
  throwsCode(t, () => tilePath({ level: 0, index: -1, width: 256 }), 'TLOG_INVALID', 'index -1');
  throwsCode(t, () => tilePath({ level: 0, index: 1.5, width: 256 }), 'TLOG_INVALID', 'index 1.5');
  throwsCode(t, () => entryBundlePath(0, 0), 'TLOG_INVALID', 'bundle width 0');
});

t.test('tilesAt: full tiles and the partial one, around 256 and 65536 and the spec\'s 70,000', async (t) => {
  const at = (level: number, size: number): string => tilesAt(level, size).map((x) => `${x.index}:${x.width}`).join(' ');
  t.equal(at(0, 0), '', 'an empty tree has no tiles');
  t.equal(at(0, 1), '0:1');
  t.equal(at(0, 255), '0:255');
  t.equal(at(1, 255), '', 'no level-1 hash below 256 leaves');
  t.equal(at(0, 256), '0:256', 'size 256: one full level-0 tile …');
  t.equal(at(1, 256), '0:1', '… and a partial level-1 tile of width 1 (the spec says so)');
  t.equal(at(0, 257), '0:256 1:1');
  t.equal(at(1, 511), '0:1');
  t.equal(at(1, 512), '0:2');
  t.equal(tilesAt(0, 65535).length, 256, '255 full tiles and one of 255');
  t.same(tilesAt(0, 65535).at(-1), { level: 0, index: 255, width: 255 });
  t.equal(at(1, 65535), '0:255');
  t.equal(at(2, 65535), '');
  t.equal(tilesAt(0, 65536).length, 256);
  t.ok(tilesAt(0, 65536).every((x) => x.width === 256), 'size 65536: 256 full level-0 tiles');
  t.equal(at(1, 65536), '0:256');
  t.equal(at(2, 65536), '0:1');
  t.equal(at(1, 65537), '0:256', 'one more leaf adds no level-1 hash');
  t.same(tilesAt(0, 70000).filter((x) => x.width === 256).length, 273, '70,000: 273 full level-0 tiles');
  t.same(tilesAt(0, 70000).at(-1), { level: 0, index: 273, width: 112 }, 'and one of 112');
  t.equal(at(1, 70000), '0:256 1:17');
  t.equal(at(2, 70000), '0:1');
  t.equal(at(3, 70000), '');
  throwsCode(t, () => tilesAt(0, -1), 'TLOG_INVALID', 'a negative size');
  throwsCode(t, () => tilesAt(64, 1), 'TLOG_INVALID', 'level 64');
});

t.test('entry bundles: round trip; truncation and oversize refused', async (t) => {
  const entries = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(300, 7), Buffer.alloc(0xffff, 1)];
  const bundle = encodeEntryBundle(entries);
  t.equal(bundle.length, 4 * 2 + 0 + 1 + 300 + 0xffff);
  t.same(bundle.subarray(0, 5), Buffer.from([0, 0, 0, 1, 0x61]), 'big-endian uint16 lengths');
  t.same(decodeEntryBundle(bundle), entries);
  t.same(decodeEntryBundle(new Uint8Array(0)), []);
  const full = Array.from({ length: TILE_WIDTH }, (_, i) => Buffer.from(`entry ${i}`));
  t.same(decodeEntryBundle(encodeEntryBundle(full)), full, 'a full bundle');
  const inside = new Uint8Array(bundle.length + 10);
  inside.set(bundle, 10);
  t.same(decodeEntryBundle(inside.subarray(10)), entries, 'a view into a larger buffer');
  t.same(decodeEntryBundle(bundle, 4), entries, 'of the width asked');
  for (const cut of [1, 3, 4, 6, bundle.length - 1]) throwsCode(t, () => decodeEntryBundle(bundle.subarray(0, cut)), 'TLOG_INVALID', `cut at ${cut}`);
  t.same(decodeEntryBundle(bundle.subarray(0, 5)), entries.slice(0, 2), 'a cut between entries is a well-formed shorter bundle …');
  throwsCode(t, () => decodeEntryBundle(bundle.subarray(0, 5), 4), 'TLOG_INVALID', '… that the width refuses');
  throwsCode(t, () => decodeEntryBundle(bundle, 5), 'TLOG_INVALID', 'fewer entries than the width');
  throwsCode(t, () => decodeEntryBundle(Buffer.concat([encodeEntryBundle(full), Buffer.from([0, 0])])), 'TLOG_INVALID', '257 entries');
  throwsCode(t, () => encodeEntryBundle([...full, Buffer.alloc(1)]), 'TLOG_INVALID', 'encode 257 entries');
  throwsCode(t, () => encodeEntryBundle([Buffer.alloc(0x10000)]), 'TLOG_INVALID', 'an entry of 65536 bytes');
});

t.test('tileHashReader: a tree served as tiles gives the roots and proofs the stored hashes give', async (t) => {
  const N = 70_000;
  const stored = new Map<string, Buffer>();
  const direct: HashReader = async (wanted) => wanted.map(({ level, index }) => stored.get(`${level}/${index}`)!);
  for (let i = 0; i < N; i++) for (const s of await appendHashes(i, leafHash(Buffer.from(`e${i}`)), direct)) stored.set(`${s.level}/${s.index}`, s.hash);
  t.same(tileHashes({ level: 1, index: 2, width: 3 }), [{ level: 8, index: 512 }, { level: 8, index: 513 }, { level: 8, index: 514 }]);
  /** Serves the tiles of a tree of `size`, failing the test for a tile that tree does not have. */
  const served = (size: number, asked: TileId[][]) => async (ids: TileId[]): Promise<Buffer[]> => {
    asked.push(ids);
    return ids.map((id) => {
      if (!tilesAt(id.level, size).some((x) => x.index === id.index && x.width === id.width)) throw new Error(`${tilePath(id)} is not a tile of ${size}`);
      return Buffer.concat(tileHashes(id).map(({ level, index }) => stored.get(`${level}/${index}`)!));
    });
  };
  const random = seeded(15);
  for (const size of [1, 2, 255, 256, 257, 511, 4097, 65535, 65536, 65537, 69999, N]) {
    const asked: TileId[][] = [];
    const tiles = tileHashReader(size, served(size, asked));
    const ok = (await treeHash(size, tiles)).equals(await treeHash(size, direct));
    const picks = [0, size - 1, Math.floor(random() * size), Math.floor(random() * size)];
    let proofs = true;
    for (const i of picks) {
      const a = await inclusionProof(i, size, tiles);
      const b = await inclusionProof(i, size, direct);
      const c = await consistencyProof(i + 1, size, tiles);
      const d = await consistencyProof(i + 1, size, direct);
      proofs &&= a.length === b.length && a.every((h, n) => h.equals(b[n]!)) && c.length === d.length && c.every((h, n) => h.equals(d[n]!));
    }
    t.ok(ok && proofs, `size ${size}: the root and the proofs of leaves ${picks.join(', ')}`);
    t.ok(asked.every((ids) => new Set(ids.map(tilePath)).size === ids.length), `size ${size}: each tile asked once per read`);
  }
  const short = tileHashReader(300, async (ids) => ids.map(() => Buffer.alloc(31)));
  await rejectsCode(t, treeHash(300, short), 'TLOG_INVALID', 'a tile of the wrong length');
  await rejectsCode(t, tileHashReader(300, served(300, []))([{ level: 8, index: 1 }]), 'TLOG_INVALID', 'a hash the tree does not have yet');
  throwsCode(t, () => tileHashReader(-1, served(0, [])), 'TLOG_INVALID', 'a negative size');
});
