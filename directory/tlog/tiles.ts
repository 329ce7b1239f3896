/**
 * C2SP tlog-tiles (https://c2sp.org/tlog-tiles): tile and entry-bundle paths, tile contents, and
 * entry bundles. Pure. docs/transparency.md.
 */
const todo = (): never => {
  throw new Error('not written yet');
};

/** Hashes (or entries) per full tile. */
export const TILE_WIDTH = 256;

/** A tile's coordinates: level L, index N, width W (1..256; 256 = full, else a partial `.p/<W>` tile). */
export interface TileId {
  level: number;
  index: number;
  width: number;
}

/** `tile/<L>/<N>[.p/<W>]` with N in the spec's x-prefixed 3-digit groups (e.g. x001/x234/067). */
export function tilePath(t: TileId): string {
  void t;
  return todo();
}

/** `tile/entries/<N>[.p/<W>]`. */
export function entryBundlePath(index: number, width: number): string {
  void [index, width];
  return todo();
}

/** Parses a path below the log's prefix (`tile/…` or `tile/entries/…`); undefined when it is not one. */
export function parseTilePath(path: string): (TileId & { entries: boolean }) | undefined {
  void path;
  return todo();
}

/** The tiles a tree of `size` has at `level` (tile level L holds hashes of Merkle level 8·L), the last possibly partial. */
export function tilesAt(level: number, size: number): TileId[] {
  void [level, size];
  return todo();
}

/** An entry bundle: each entry as a big-endian uint16 length and its bytes. */
export function encodeEntryBundle(entries: Uint8Array[]): Buffer {
  void entries;
  return todo();
}

export function decodeEntryBundle(bundle: Uint8Array): Buffer[] {
  void bundle;
  return todo();
}
