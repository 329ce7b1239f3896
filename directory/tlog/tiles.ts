/**
 * C2SP tlog-tiles (https://c2sp.org/tlog-tiles): tile and entry-bundle paths, tile contents, and
 * entry bundles. Pure. docs/transparency.md.
 */
import { MailmeshError } from '../errors.js';
import { nodeHash, type HashReader } from './merkle.js';

/** Hashes (or entries) per full tile. */
export const TILE_WIDTH = 256;

/** tlog-tiles §"Merkle Tree": `<L>` is 0..63. */
const MAX_LEVEL = 63;
/** An entry's length is a uint16 (tlog-tiles §"Log entries"). */
const MAX_ENTRY = 0xffff;

/** A tile's coordinates: level L, index N, width W (1..256; 256 = full, else a partial `.p/<W>` tile). */
export interface TileId {
  level: number;
  index: number;
  width: number;
}

const invalid = (detail: string): MailmeshError => new MailmeshError('TLOG_INVALID', detail);

function checkTile(level: number, index: number, width: number): void {
  if (!Number.isInteger(level) || level < 0 || level > MAX_LEVEL) throw invalid(`tile level ${String(level)} is not 0..${MAX_LEVEL}`);
  if (!Number.isSafeInteger(index) || index < 0) throw invalid(`tile index ${String(index)} is not a non-negative integer`);
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw invalid(`tile width ${String(width)} is not 1..${TILE_WIDTH}`);
}

/** tlog-tiles §"Merkle Tree": `<N>` as zero-padded 3-digit elements, all but the last with an `x`, and `.p/<W>` for a partial tile. */
function indexPath(index: number, width: number): string {
  const groups: string[] = [];
  let n = index;
  do {
    groups.unshift(String(n % 1000).padStart(3, '0'));
    n = Math.floor(n / 1000);
  } while (n > 0);
  const path = groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
  return width === TILE_WIDTH ? path : `${path}.p/${width}`;
}

/** `tile/<L>/<N>[.p/<W>]` with N in the spec's x-prefixed 3-digit groups (e.g. x001/x234/067); tlog-tiles §"Merkle Tree". */
export function tilePath(t: TileId): string {
  checkTile(t.level, t.index, t.width);
  return `tile/${t.level}/${indexPath(t.index, t.width)}`;
}

/** `tile/entries/<N>[.p/<W>]`; tlog-tiles §"Log entries". */
export function entryBundlePath(index: number, width: number): string {
  checkTile(0, index, width);
  return `tile/entries/${indexPath(index, width)}`;
}

/**
 * Parses a path below the log's prefix (`tile/…` or `tile/entries/…`); undefined when it is not
 * one, or not in the spec's one canonical spelling (no leading zeros, no `.p/256`, no `x000/`).
 * An entry bundle has level 0 (it goes with the level-0 tile of the same index).
 */
export function parseTilePath(path: string): (TileId & { entries: boolean }) | undefined {
  const m = /^tile\/(entries|0|[1-9][0-9]?)\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(path);
  if (!m) return undefined;
  const entries = m[1] === 'entries';
  const level = entries ? 0 : Number(m[1]);
  const index = Number(m[2]!.replaceAll(/[x/]/g, ''));
  const width = m[3] === undefined ? TILE_WIDTH : Number(m[3]);
  if (level > MAX_LEVEL || (m[3] !== undefined && width >= TILE_WIDTH) || !Number.isSafeInteger(index)) return undefined;
  const id = { level, index, width };
  // Canonical only: the same tile has one path (no x000/ groups in front).
  if ((entries ? entryBundlePath(index, width) : tilePath(id)) !== path) return undefined;
  return { ...id, entries };
}

/**
 * The tiles a tree of `size` has at `level` (tile level L holds hashes of Merkle level 8·L), the
 * last possibly partial; tlog-tiles §"Partial Tiles": floor(size / 256^L) hashes at the level,
 * so floor(size / 256^(L+1)) full tiles and a partial one of width floor(size / 256^L) mod 256.
 */
export function tilesAt(level: number, size: number): TileId[] {
  checkTile(level, 0, TILE_WIDTH);
  if (!Number.isSafeInteger(size) || size < 0) throw invalid(`tree size ${String(size)} is not a non-negative integer`);
  const hashes = Math.floor(size / TILE_WIDTH ** level);
  const full = Math.floor(hashes / TILE_WIDTH);
  const tiles: TileId[] = Array.from({ length: full }, (_, index) => ({ level, index, width: TILE_WIDTH }));
  if (hashes % TILE_WIDTH) tiles.push({ level, index: full, width: hashes % TILE_WIDTH });
  return tiles;
}

/** An entry bundle (tlog-tiles §"Log entries"): each entry as a big-endian uint16 length and its bytes; at most 256 entries. */
export function encodeEntryBundle(entries: Uint8Array[]): Buffer {
  if (entries.length > TILE_WIDTH) throw invalid(`an entry bundle holds at most ${TILE_WIDTH} entries, not ${entries.length}`);
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.length > MAX_ENTRY) throw invalid(`an entry of ${e.length} bytes is above the ${MAX_ENTRY} a bundle can hold`);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(e.length);
    parts.push(len, Buffer.from(e));
  }
  return Buffer.concat(parts);
}

/**
 * The entries of a bundle (tlog-tiles §"Log entries"); TLOG_INVALID when truncated inside an entry,
 * above 256 entries, or, given the `width` its path or the tree size says, not of that many entries
 * (a bundle cut at an entry boundary is well-formed: only the width shows the cut).
 */
export function decodeEntryBundle(bundle: Uint8Array, width?: number): Buffer[] {
  const b = Buffer.from(bundle.buffer, bundle.byteOffset, bundle.byteLength);
  const entries: Buffer[] = [];
  let at = 0;
  while (at < b.length) {
    if (entries.length === TILE_WIDTH) throw invalid(`an entry bundle holds more than ${TILE_WIDTH} entries`);
    if (at + 2 > b.length) throw invalid(`the entry bundle is truncated in the length of entry ${entries.length}`);
    const len = b.readUInt16BE(at);
    if (at + 2 + len > b.length) throw invalid(`the entry bundle is truncated in entry ${entries.length} (${len} bytes)`);
    entries.push(Buffer.from(b.subarray(at + 2, at + 2 + len)));
    at += 2 + len;
  }
  if (width !== undefined && entries.length !== width) throw invalid(`the entry bundle holds ${entries.length} entries, not ${width}`);
  return entries;
}

/** The stored hashes a tile holds (tlog-tiles §"Merkle Tree": tile level L holds Merkle level 8·L), in order. */
export function tileHashes(t: TileId): { level: number; index: number }[] {
  checkTile(t.level, t.index, t.width);
  return Array.from({ length: t.width }, (_, i) => ({ level: 8 * t.level, index: t.index * TILE_WIDTH + i }));
}

/**
 * A `HashReader` (merkle.ts) for the tree of `size` served as tiles: each stored hash is in the tile
 * at level ⌊level/8⌋ (of the width that tree size gives it, tlog-tiles §"Partial Tiles"), as one
 * hash or as the complete subtree over 2^(level mod 8) of its hashes. `readTiles` gets each tile
 * once per call and gives its bytes (32 per hash); a tile of another length is TLOG_INVALID.
 */
export function tileHashReader(size: number, readTiles: (tiles: TileId[]) => Promise<Buffer[]>): HashReader {
  if (!Number.isSafeInteger(size) || size < 0) throw invalid(`tree size ${String(size)} is not a non-negative integer`);
  return async (wanted) => {
    const places = wanted.map(({ level, index }) => {
      const L = Math.floor(level / 8);
      const span = 2 ** (level % 8);
      const first = index * span; // the first of its hashes at Merkle level 8·L
      const tile = Math.floor(first / TILE_WIDTH);
      const hashes = Math.floor(size / TILE_WIDTH ** L);
      const width = tile < Math.floor(hashes / TILE_WIDTH) ? TILE_WIDTH : hashes % TILE_WIDTH;
      const start = first % TILE_WIDTH;
      if (width < start + span) throw invalid(`the hash ${level}/${index} is not complete in a tree of ${size}`);
      return { id: { level: L, index: tile, width }, start, span };
    });
    const ids = [...new Map(places.map((p) => [tilePath(p.id), p.id])).values()];
    const got = ids.length ? await readTiles(ids) : [];
    const tiles = new Map(ids.map((id, n) => [tilePath(id), got[n]]));
    return places.map(({ id, start, span }) => {
      const data = tiles.get(tilePath(id));
      if (data?.length !== id.width * 32) throw invalid(`the tile ${tilePath(id)} has ${data?.length ?? 'no'} bytes, not ${id.width * 32}`);
      let level = Array.from({ length: span }, (_, i) => data.subarray((start + i) * 32, (start + i + 1) * 32));
      while (level.length > 1) level = Array.from({ length: level.length / 2 }, (_, i) => nodeHash(level[2 * i]!, level[2 * i + 1]!));
      return Buffer.from(level[0]!);
    });
  };
}
