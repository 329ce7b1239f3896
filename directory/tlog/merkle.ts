/**
 * RFC 9162 §2.1 Merkle trees: hashing, proofs and their verification, over a tree whose complete
 * subtree hashes are stored (the tiles of C2SP tlog-tiles hold exactly those). Pure: no store,
 * no I/O but the `HashReader` it is given. docs/transparency.md.
 */
const todo = (): never => {
  throw new Error('not written yet');
};

/** The hash of the complete subtree at `level` covering leaves [index·2^level, (index+1)·2^level). */
export interface StoredHash {
  level: number;
  index: number;
  hash: Buffer;
}

/** Reads stored complete-subtree hashes, in the order asked; only subtrees entirely inside the tree are asked for. */
export type HashReader = (wanted: { level: number; index: number }[]) => Promise<Buffer[]>;

/** RFC 9162 §2.1.1: the leaf hash, SHA-256(0x00 || entry). */
export function leafHash(entry: Uint8Array): Buffer {
  void entry;
  return todo();
}

/** RFC 9162 §2.1.1: an interior node, SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  void [left, right];
  return todo();
}

/** RFC 9162 §2.1.1: MTH of the first `size` leaves (SHA-256 of "" when size is 0). */
export async function treeHash(size: number, read: HashReader): Promise<Buffer> {
  void [size, read];
  return todo();
}

/** What appending leaf number `index` (0-based; the tree had `index` leaves) adds to the stored hashes: the leaf's and every subtree it completes. */
export async function appendHashes(index: number, leaf: Buffer, read: HashReader): Promise<StoredHash[]> {
  void [index, leaf, read];
  return todo();
}

/** RFC 9162 §2.1.3.1: the inclusion proof (audit path) of leaf `index` in the tree of `size`. */
export async function inclusionProof(index: number, size: number, read: HashReader): Promise<Buffer[]> {
  void [index, size, read];
  return todo();
}

/** RFC 9162 §2.1.4.1: the consistency proof between tree sizes `oldSize` ≤ `newSize`. */
export async function consistencyProof(oldSize: number, newSize: number, read: HashReader): Promise<Buffer[]> {
  void [oldSize, newSize, read];
  return todo();
}

/** RFC 9162 §2.1.3.2: true when `proof` shows the leaf hash at `index` in the tree of `size` with `root`. */
export function verifyInclusion(index: number, size: number, leaf: Buffer, proof: Buffer[], root: Buffer): boolean {
  void [index, size, leaf, proof, root];
  return todo();
}

/** RFC 9162 §2.1.4.2: true when `proof` shows the tree (`oldSize`, `oldRoot`) is a prefix of (`newSize`, `newRoot`). */
export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Buffer, newRoot: Buffer, proof: Buffer[]): boolean {
  void [oldSize, newSize, oldRoot, newRoot, proof];
  return todo();
}
