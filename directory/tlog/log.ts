import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { parseDomain } from '../domain.js';
import { isMailmeshError, MailmeshError } from '../errors.js';
import type { DomainRecord, RecordDraft } from '../record.js';
import type { Sealer } from '../seal.js';
import type { LogStore } from '../store/log.js';
import type { KvStore, MetaStore, RecordStore } from '../store/store.js';
import { recordEntry } from './leaf.js';
import { consistencyProof, inclusionProof, leafHash, treeHash } from './merkle.js';
import { formatCheckpoint, signNote, verifierKey, type NoteSigner } from './note.js';
import { encodeEntryBundle, TILE_WIDTH, type TileId } from './tiles.js';

/**
 * The directory's transparency log (docs/transparency.md): every published record version is
 * appended (recordEntry) before it is written, checkpoints are signed notes of the log's
 * Ed25519 key, and proofs and tiles are read from the store's hashes (directory/store/log.ts).
 */

/** Meta value (set once): the log's origin and Ed25519 private key (PKCS #8), sealed under the master key. */
export const LOG_KEY_META = 'tlog-key';
/** Meta value (set once): the records held before the log existed have been logged. */
/** kv: the serial up to which held records were backfilled into the log. */
export const LOG_BACKFILL_KEY = 'tlog:backfilled';
/** The seal context of the log key (directory/seal.ts: a sealed blob cannot move to another purpose). */
export const LOG_KEY_CONTEXT = 'mailmesh transparency log key';

/** C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) as served: its size, root and the signed note text. */
export interface SignedCheckpoint {
  size: number;
  rootHash: Buffer;
  note: string;
}

/** The `transparency` member of a served record (GET /v1/domains/{domain}). */
export interface RecordTransparency {
  leafIndex: number;
  /** RFC 9162 §2.1.3.1 inclusion proof of the leaf in the checkpoint's tree, each hash base64. */
  inclusionProof: string[];
  checkpoint: string;
}

/** The checkpoint origin of a directory's log: `<federation zone>/log` (the zone canonical: lower case, no final dot). */
export function logOrigin(zone: string): string {
  return `${parseDomain(zone)}/log`;
}

type LogKey = { signer: NoteSigner; vkey: string };

export class TransparencyLog {
  readonly #store: LogStore & MetaStore;
  readonly #sealer: Sealer;
  readonly #origin: string;
  #key: Promise<LogKey> | undefined;
  /** The latest checkpoint signed by this process (a checkpoint is signed once per tree size, when asked for). */
  #latest: SignedCheckpoint | undefined;

  /** `origin`: the checkpoint origin for a log whose key is made now; a store that holds a key keeps its own. */
  constructor(store: LogStore & MetaStore, sealer: Sealer, origin: string) {
    this.#store = store;
    this.#sealer = sealer;
    this.#origin = origin;
  }

  /**
   * Logs a record version (before it is written: a version is never served unlogged); a version
   * already logged (the same bytes: a rewrite that changed no signed content) is not logged again.
   */
  async record(r: RecordDraft): Promise<void> {
    const entry = recordEntry(r);
    if (entry) await this.#store.appendLogEntry(entry);
  }

  /**
   * At every open: logs the published records written since the last backfill (before the log
   * existed, or by an older node of a rolling upgrade that does not log), from the serial it
   * reached (kv LOG_BACKFILL_KEY; records logged already are found, not logged again). A record
   * that cannot be logged (TLOG_ENTRY_TOO_LARGE) is skipped — it is served without a proof —
   * rather than keeping the directory from opening; the domains skipped are returned.
   */
  async backfill(store: Pick<RecordStore, 'listSince'> & Pick<KvStore, 'kvGet' | 'kvPut'>): Promise<string[]> {
    const skipped: string[] = [];
    let since = Number((await store.kvGet(LOG_BACKFILL_KEY)) ?? 0);
    for (;;) {
      const page = await store.listSince(since, 500);
      if (page.length === 0) break;
      for (const r of page) {
        if (r.status === 'deleted') continue;
        await this.record(r).catch((e: unknown) => {
          if (!isMailmeshError(e, 'TLOG_ENTRY_TOO_LARGE')) throw e;
          skipped.push(r.domain);
        });
      }
      since = page[page.length - 1]!.serial;
      await store.kvPut(LOG_BACKFILL_KEY, String(since));
    }
    return skipped;
  }

  /** The log key: made on first use and sealed into the store (set once: of nodes racing, the first one's key is everyone's). */
  #logKey(): Promise<LogKey> {
    this.#key ??= (async () => {
      let sealed = await this.#store.getMeta(LOG_KEY_META);
      if (!sealed) {
        const pkcs8 = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
        const fresh = this.#sealer.seal(Buffer.from(JSON.stringify({ origin: this.#origin, pkcs8 })), LOG_KEY_CONTEXT);
        sealed = await this.#store.setMetaIfAbsent(LOG_KEY_META, fresh.toString('base64'));
      }
      const held = JSON.parse(this.#sealer.open(Buffer.from(sealed, 'base64'), LOG_KEY_CONTEXT).toString('utf8')) as { origin: string; pkcs8: string };
      const privateKey = createPrivateKey({ key: Buffer.from(held.pkcs8, 'base64'), format: 'der', type: 'pkcs8' });
      return { signer: { name: held.origin, privateKey }, vkey: verifierKey(held.origin, createPublicKey(privateKey)) };
    })();
    this.#key.catch(() => (this.#key = undefined));
    return this.#key;
  }

  /** signed-note vkey of the log (C2SP signed-note "Verifier keys"). */
  async verifierKey(): Promise<string> {
    return (await this.#logKey()).vkey;
  }

  async origin(): Promise<string> {
    return (await this.#logKey()).signer.name;
  }

  size(): Promise<number> {
    return this.#store.logSize();
  }

  /**
   * The checkpoint of the log as it is now: signed when the log has grown since the last one this
   * process signed, else that one. Ed25519 signatures are deterministic (RFC 8032 §5.1.6), so every
   * node of a cluster serves the same bytes for one size.
   */
  async checkpoint(): Promise<SignedCheckpoint> {
    const size = await this.#store.logSize();
    const latest = this.#latest;
    // Only the very size: a store that went back (a failover to a replica that lagged, a restore)
    // gets a checkpoint of what it holds — a rollback clients see — never one of a tree it lacks.
    if (latest && latest.size === size) return latest;
    const rootHash = await treeHash(size, this.#store.logHashes);
    const { signer } = await this.#logKey();
    // C2SP tlog-checkpoint: origin, size, base64 root, as the body of a C2SP signed note.
    const note = signNote(formatCheckpoint({ origin: signer.name, size, rootHash, extensions: [] }), signer);
    const cp = { size, rootHash, note };
    this.#latest = cp;
    return cp;
  }

  /** RFC 9162 §2.1.4.1 between two sizes of this log (0 < old ≤ new ≤ size, else TLOG_SIZE_INVALID). */
  async consistency(oldSize: number, newSize: number): Promise<Buffer[]> {
    const size = await this.#store.logSize();
    if (!(oldSize > 0 && oldSize <= newSize && newSize <= size)) throw new MailmeshError('TLOG_SIZE_INVALID', `old ${oldSize}, new ${newSize}, size ${size}`);
    return consistencyProof(oldSize, newSize, this.#store.logHashes);
  }

  /** The log entry of the record version served, its index, and its inclusion proof in the current checkpoint; undefined when it is not logged. */
  async prove(r: DomainRecord): Promise<RecordTransparency | undefined> {
    const entry = recordEntry(r);
    const leafIndex = entry && (await this.#store.logIndexOf(leafHash(entry)));
    if (leafIndex === undefined) return undefined;
    const cp = await this.checkpoint();
    const proof = await inclusionProof(leafIndex, cp.size, this.#store.logHashes);
    return { leafIndex, inclusionProof: proof.map((h) => h.toString('base64')), checkpoint: cp.note };
  }

  /**
   * C2SP tlog-tiles: a tile (`entries` false: hashes of Merkle level 8·L, 32 bytes each) or an
   * entry bundle, when the tree holds all of it now; undefined when it does not (yet).
   */
  async tile(t: TileId & { entries: boolean }): Promise<Buffer | undefined> {
    const size = await this.#store.logSize();
    const first = t.index * TILE_WIDTH;
    const span = t.entries ? 1 : TILE_WIDTH ** t.level;
    if (t.width < 1 || t.width > TILE_WIDTH || (first + t.width) * span > size) return undefined;
    if (t.entries) return encodeEntryBundle(await this.#store.logEntries(first, first + t.width));
    const wanted = Array.from({ length: t.width }, (_, i) => ({ level: 8 * t.level, index: first + i }));
    return Buffer.concat(await this.#store.logHashes(wanted));
  }
}
