import { MailmeshError } from '../errors.js';
import { appendHashes, leafHash, type HashReader, type StoredHash } from '../tlog/merkle.js';

/**
 * The transparency log's side of a store (docs/transparency.md): an append-only list of entries
 * and the RFC 9162 §2.1 complete-subtree hashes over them (the tiles of C2SP tlog-tiles). Every
 * implementation passes test/directory/store/log-contract.ts. Nothing is ever rewritten: an
 * entry and a hash, once stored, keep their index and their bytes.
 */
export interface LogStore {
  /** The number of entries (the tree size); 0 for an empty log. */
  logSize(): Promise<number>;
  /**
   * Appends `entry` as the next leaf, with the complete-subtree hashes it adds, in one atomic
   * write, and returns its index. Two processes appending at once never fork the tree: each
   * write is a compare-and-set on the size. An entry already in the log is not appended again:
   * its index is returned. TLOG_ENTRY_TOO_LARGE over MAX_LOG_ENTRY bytes.
   */
  appendLogEntry(entry: Uint8Array): Promise<number>;
  /** Entries [start, end), in order; end is clipped to the size. */
  logEntries(start: number, end: number): Promise<Buffer[]>;
  /** Stored hashes, in the order asked (a merkle.HashReader); TLOG_HASH_MISSING for one not stored. */
  logHashes: HashReader;
  /** The index of the entry whose RFC 9162 leaf hash is `leaf`, or undefined. */
  logIndexOf(leaf: Buffer): Promise<number | undefined>;
}

/** C2SP tlog-tiles "Log entries": entry bundles length-prefix each entry with a big-endian uint16. */
export const MAX_LOG_ENTRY = 0xffff;

/** What a backend does in one atomic write; the shared loop (appendEntry) computes what to write. */
export interface LogBackend extends Omit<LogStore, 'appendLogEntry'> {
  /**
   * Atomically: if `leaf` is stored, its index; else if the size is still `index`, stores the
   * entry at `index` with `hashes` and returns `index`; else (another writer came first) undefined.
   */
  commitLogEntry(index: number, entry: Buffer, leaf: Buffer, hashes: StoredHash[]): Promise<number | undefined>;
}

/** Attempts before giving up under contention (each failed attempt means another writer succeeded). */
const ATTEMPTS = 1000;

/**
 * LogStore.appendLogEntry for every backend: read the size, compute the new hashes from the
 * stored ones (merkle.appendHashes; stored hashes never change, so reading them outside the
 * write is safe), and commit them if the size has not moved meanwhile; else again.
 */
export async function appendEntry(b: LogBackend, entry: Uint8Array): Promise<number> {
  if (entry.length > MAX_LOG_ENTRY) throw new MailmeshError('TLOG_ENTRY_TOO_LARGE', `${entry.length} bytes (at most ${MAX_LOG_ENTRY})`);
  const bytes = Buffer.from(entry);
  const leaf = leafHash(bytes);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const held = await b.logIndexOf(leaf);
    if (held !== undefined) return held;
    const index = await b.logSize();
    const hashes = await appendHashes(index, leaf, b.logHashes);
    const done = await b.commitLogEntry(index, bytes, leaf, hashes);
    if (done !== undefined) return done;
  }
  throw new MailmeshError('STORE_UNAVAILABLE', `log append: ${ATTEMPTS} attempts lost to other writers`);
}

/** The key of a stored hash in a map or a hash field: `<level>/<index>`. */
export const hashKey = (h: { level: number; index: number }): string => `${h.level}/${h.index}`;

/** TLOG_HASH_MISSING: a hash asked for is not stored (the caller asked outside the tree, or the store lost it). */
export function missingHash(h: { level: number; index: number }): MailmeshError {
  return new MailmeshError('TLOG_HASH_MISSING', `level ${h.level} index ${h.index}`);
}

/** Backups (StoreEntry kind 'log'): each entry in index order, restored by appending it again (the hashes follow from the entries). */
export async function* logDump(s: LogStore): AsyncGenerator<{ kind: 'log'; index: number; entry: string }> {
  const size = await s.logSize();
  for (let start = 0; start < size; start += 256) {
    const page = await s.logEntries(start, Math.min(size, start + 256));
    for (const [i, e] of page.entries()) yield { kind: 'log', index: start + i, entry: e.toString('base64') };
  }
}

/** restoreEntry of a 'log' entry: it must land at its own index (entries come back in order into an empty log). */
export async function restoreLogEntry(s: LogStore, e: { index: number; entry: string }): Promise<void> {
  const at = await s.appendLogEntry(Buffer.from(e.entry, 'base64'));
  if (at !== e.index) throw new MailmeshError('STORE_NOT_EMPTY', `log entry ${e.index} landed at ${at}: restore the log in order into an empty store`);
}
