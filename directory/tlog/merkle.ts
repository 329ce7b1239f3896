/**
 * RFC 9162 §2.1 Merkle trees: hashing, proofs and their verification, over a tree whose complete
 * subtree hashes are stored (the tiles of C2SP tlog-tiles hold exactly those). Pure: no store,
 * no I/O but the `HashReader` it is given. docs/transparency.md.
 *
 * Every range the RFC 9162 recursion hashes, MTH(D[lo:hi]), starts at a multiple of the smallest
 * power of two ≥ hi − lo, so it splits into the complete subtrees of hi − lo's binary digits (largest
 * first): their stored hashes folded from the right give its hash. No proof needs a leaf.
 */
import { createHash } from 'node:crypto';
import { MailmeshError } from '../errors.js';

/** The hash of the complete subtree at `level` covering leaves [index·2^level, (index+1)·2^level). */
export interface StoredHash {
  level: number;
  index: number;
  hash: Buffer;
}

/** Reads stored complete-subtree hashes, in the order asked; only subtrees entirely inside the tree are asked for. */
export type HashReader = (wanted: { level: number; index: number }[]) => Promise<Buffer[]>;

type Node = { level: number; index: number };
/** A leaf range [lo, hi) as the RFC's recursion produces it. */
type Range = readonly [lo: number, hi: number];

const HASH_SIZE = 32;

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** RFC 9162 §2.1.1: the leaf hash, SHA-256(0x00 || entry). */
export function leafHash(entry: Uint8Array): Buffer {
  return sha256(Buffer.of(0), entry);
}

/** RFC 9162 §2.1.1: an interior node, SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return sha256(Buffer.of(1), left, right);
}

function checkSize(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new MailmeshError('TLOG_INVALID', `${what} ${String(n)} is not a tree size or index`);
}

/** The largest power of two strictly below n (n ≥ 2): RFC 9162's split point k. */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The complete subtrees of [lo, hi), largest (leftmost) first. */
function parts([lo, hi]: Range): Node[] {
  const out: Node[] = [];
  let at = lo;
  while (at < hi) {
    let level = 0;
    while (2 ** (level + 1) <= hi - at) level++;
    out.push({ level, index: at / 2 ** level });
    at += 2 ** level;
  }
  return out;
}

/** MTH of every range, reading all the stored hashes they need in one call. */
async function rangeHashes(ranges: readonly Range[], read: HashReader): Promise<Buffer[]> {
  const pieces = ranges.map(parts);
  const wanted = pieces.flat();
  const got = wanted.length ? await read(wanted) : [];
  if (got.length !== wanted.length || got.some((h) => h?.length !== HASH_SIZE)) {
    throw new MailmeshError('TLOG_INVALID', `the hash reader gave ${got.length} hashes for ${wanted.length} asked, or one not of ${HASH_SIZE} bytes`);
  }
  let at = 0;
  return pieces.map((p) => {
    const hashes = got.slice(at, (at += p.length));
    return hashes.reduceRight((right, left) => nodeHash(left, right));
  });
}

/** RFC 9162 §2.1.1: MTH of the first `size` leaves (SHA-256 of "" when size is 0). */
export async function treeHash(size: number, read: HashReader): Promise<Buffer> {
  checkSize('size', size);
  if (size === 0) return sha256();
  const [root] = await rangeHashes([[0, size]], read);
  return root!;
}

/**
 * What appending leaf number `index` (0-based; the tree had `index` leaves) adds to the stored
 * hashes: the leaf's and every subtree it completes. `leaf` is the leaf hash (`leafHash(entry)`).
 */
export async function appendHashes(index: number, leaf: Buffer, read: HashReader): Promise<StoredHash[]> {
  checkSize('index', index);
  if (leaf.length !== HASH_SIZE) throw new MailmeshError('TLOG_INVALID', `a leaf hash has ${HASH_SIZE} bytes, not ${leaf.length}`);
  // Leaf `index` completes the subtree at level l+1 for every l where bit l of index is 1 and all lower bits are too.
  const siblings: Node[] = [];
  for (let level = 0, i = index; i % 2 === 1; level++, i = (i - 1) / 2) siblings.push({ level, index: i - 1 });
  const got = siblings.length ? await read(siblings) : [];
  if (got.length !== siblings.length || got.some((h) => h?.length !== HASH_SIZE)) throw new MailmeshError('TLOG_INVALID', `the hash reader gave ${got.length} hashes for ${siblings.length} asked`);
  const out: StoredHash[] = [{ level: 0, index, hash: leaf }];
  let hash = leaf;
  siblings.forEach((s, n) => {
    hash = nodeHash(got[n]!, hash);
    out.push({ level: s.level + 1, index: s.index / 2, hash });
  });
  return out;
}

/** PATH(m, D[lo:hi]) of RFC 9162 §2.1.3.1, as the ranges whose hashes it lists (deepest first). */
function pathRanges(m: number, lo: number, hi: number): Range[] {
  const out: Range[] = [];
  while (hi - lo > 1) {
    const k = split(hi - lo);
    if (m < lo + k) {
      out.push([lo + k, hi]);
      hi = lo + k;
    } else {
      out.push([lo, lo + k]);
      lo += k;
    }
  }
  return out.reverse();
}

/** RFC 9162 §2.1.3.1: the inclusion proof (audit path) of leaf `index` in the tree of `size`. */
export async function inclusionProof(index: number, size: number, read: HashReader): Promise<Buffer[]> {
  checkSize('index', index);
  checkSize('size', size);
  if (index >= size) throw new MailmeshError('TLOG_INVALID', `leaf ${index} is not in a tree of ${size}`);
  return rangeHashes(pathRanges(index, 0, size), read);
}

/** SUBPROOF(m, D[0:n], true) of RFC 9162 §2.1.4.1, as the ranges whose hashes it lists (deepest first). */
function subproofRanges(m: number, n: number): Range[] {
  const out: Range[] = [];
  let lo = 0;
  let hi = n;
  let complete = true; // the RFC's b: the old tree is a complete left subtree of this range so far
  while (m !== hi) {
    const k = split(hi - lo);
    if (m <= lo + k) {
      out.push([lo + k, hi]);
      hi = lo + k;
    } else {
      out.push([lo, lo + k]);
      lo += k;
      complete = false;
    }
  }
  if (!complete) out.push([lo, hi]);
  return out.reverse();
}

/** RFC 9162 §2.1.4.1: the consistency proof between tree sizes `oldSize` ≤ `newSize` (empty when oldSize is 0 or newSize). */
export async function consistencyProof(oldSize: number, newSize: number, read: HashReader): Promise<Buffer[]> {
  checkSize('old size', oldSize);
  checkSize('new size', newSize);
  if (oldSize > newSize) throw new MailmeshError('TLOG_INVALID', `old size ${oldSize} is above new size ${newSize}`);
  if (oldSize === 0 || oldSize === newSize) return [];
  return rangeHashes(subproofRanges(oldSize, newSize), read);
}

const isHash = (h: Buffer): boolean => Buffer.isBuffer(h) && h.length === HASH_SIZE;
const odd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

/** RFC 9162 §2.1.3.2: true when `proof` shows the leaf hash at `index` in the tree of `size` with `root`. */
export function verifyInclusion(index: number, size: number, leaf: Buffer, proof: Buffer[], root: Buffer): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (!isHash(leaf) || !isHash(root) || !proof.every(isHash)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) [fn, sn] = [half(fn), half(sn)];
    } else {
      r = nodeHash(r, p);
    }
    [fn, sn] = [half(fn), half(sn)];
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 §2.1.4.2: true when `proof` shows the tree (`oldSize`, `oldRoot`) is a prefix of (`newSize`, `newRoot`). */
export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Buffer, newRoot: Buffer, proof: Buffer[]): boolean {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize) return false;
  if (!isHash(oldRoot) || !isHash(newRoot) || !proof.every(isHash)) return false;
  // Outside the RFC's 0 < first < second: the empty tree is a prefix of every tree, a tree is its own.
  if (oldSize === 0) return proof.length === 0 && oldRoot.equals(sha256());
  if (oldSize === newSize) return proof.length === 0 && oldRoot.equals(newRoot);
  if (proof.length === 0) return false; // step 1
  const path = isPow2(oldSize) ? [oldRoot, ...proof] : proof; // step 2
  let fn = oldSize - 1; // step 3
  let sn = newSize - 1;
  while (odd(fn)) [fn, sn] = [half(fn), half(sn)]; // step 4
  let fr = path[0]!; // step 5
  let sr = path[0]!;
  for (const c of path.slice(1)) { // step 6
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) [fn, sn] = [half(fn), half(sn)];
    } else {
      sr = nodeHash(sr, c);
    }
    [fn, sn] = [half(fn), half(sn)];
  }
  return fr.equals(oldRoot) && sr.equals(newRoot) && sn === 0; // step 7
}

function isPow2(n: number): boolean {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}
