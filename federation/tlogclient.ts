import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { leafHash, nodeHash, treeHash, verifyConsistency, verifyInclusion, type HashReader } from '../directory/tlog/merkle.js';
import { openNote, parseCheckpoint, parseVerifierKey, type Checkpoint, type NoteVerifier } from '../directory/tlog/note.js';
import { decodeEntryBundle, entryBundlePath, tilePath, TILE_WIDTH } from '../directory/tlog/tiles.js';
import { getBytes, getJson, type Fetch } from './web.js';
import { recordEntry } from '../directory/tlog/leaf.js';
import type { RecordDraft } from '../directory/record.js';
import { MAX_LOG_ENTRY } from '../directory/store/log.js';

/** A checkpoint is a few lines; more is not one. */
const MAX_CHECKPOINT = 64 * 1024;

/**
 * A client of another directory's transparency log (docs/transparency.md): it reads the log the
 * way any client does, over cacheable GETs (C2SP tlog-tiles below `<directory>/log/`, the
 * checkpoint, and the REST answers of `/v1/log`), and verifies what it reads: the checkpoint's
 * signature (C2SP signed-note, tlog-checkpoint), consistency between two checkpoints and the
 * inclusion of a domain's record (RFC 9162 §2.1.3.2, §2.1.4.2). `mailmesh log` uses it; discovery
 * will. Failures: TLOG_INVALID (malformed data or a signature that does not verify),
 * TLOG_PROOF_FAILED (a proof that does not verify: the log is not what it claims),
 * LOOKUP_UNAVAILABLE (the directory cannot be read).
 */

/** `GET /v1/log`: what a directory says of its log. */
export interface LogInfo {
  origin: string;
  vkey: string;
  size: number;
  checkpoint: string;
}

/** A checkpoint whose signature verified: the note as served, its body, and the vkey it verified with. */
export interface VerifiedCheckpoint {
  note: string;
  vkey: string;
  checkpoint: Checkpoint;
}

/** A domain record's inclusion, verified: its leaf, the entry (the logged record) and the checkpoint proven against. */
export interface VerifiedInclusion {
  domain: string;
  leafIndex: number;
  entry: Buffer;
  checkpoint: VerifiedCheckpoint;
}

export interface TlogClientOptions {
  fetch?: Fetch;
  timeoutMs?: number;
}

const proofFailed = (detail: string) => new MailmeshError('TLOG_PROOF_FAILED', detail);
const invalid = (detail: string) => new MailmeshError('TLOG_INVALID', detail);

function base64List(v: unknown, what: string): Buffer[] {
  if (!Array.isArray(v) || !v.every((p) => typeof p === 'string')) throw invalid(`${what}: not an array of base64 hashes`);
  return v.map((p: string) => {
    const b = Buffer.from(p, 'base64');
    if (b.length !== 32 || b.toString('base64') !== p) throw invalid(`${what}: ${JSON.stringify(p.slice(0, 60))} is not a base64 SHA-256 hash`);
    return b;
  });
}

/** Verifies a signed checkpoint note with `vkey`: its signature (signed-note) and its origin, the key's name (tlog-checkpoint). */
export function verifyCheckpoint(note: string, vkey: string): VerifiedCheckpoint {
  const verifier: NoteVerifier = parseVerifierKey(vkey);
  let opened: { text: string; verifiedBy: string[] };
  try {
    opened = openNote(note, [verifier]);
  } catch (e) {
    if (isMailmeshError(e)) throw new MailmeshError(e.code, `the checkpoint of ${verifier.name}: ${e.detail ?? e.message}`);
    throw e;
  }
  if (!opened.verifiedBy.includes(verifier.name)) throw invalid(`the checkpoint carries no signature by ${verifier.name} (key ID ${verifier.keyId.toString('hex')})`);
  const checkpoint = parseCheckpoint(opened.text);
  // tlog-checkpoint: the origin line names the log; the log's key has the same name.
  if (checkpoint.origin !== verifier.name) throw invalid(`the checkpoint's origin ${JSON.stringify(checkpoint.origin)} is not the key's name ${verifier.name}`);
  return { note, vkey, checkpoint };
}

/** The domain a log entry (a signed record as JSON: `{payload, signature}`, `payload` the canonical RecordPayload) is about. */
export function entryDomain(entry: Buffer): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(entry.toString('utf8'));
  } catch {
    return undefined;
  }
  for (let depth = 0; depth < 3 && v && typeof v === 'object'; depth++) {
    const o = v as Record<string, unknown>;
    if (typeof o.domain === 'string') return o.domain;
    const inner = o.payload ?? o.record;
    try {
      v = typeof inner === 'string' ? JSON.parse(inner) : inner;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export class TlogClient {
  readonly base: string;
  private readonly tiles = new Map<string, Buffer>();
  /** The largest verified checkpoint size: partial tiles of that size exist (tlog-tiles). */
  private latest = 0;

  constructor(directoryUrl: string, private readonly opts: TlogClientOptions = {}) {
    this.base = directoryUrl.replace(/\/+$/, '');
  }

  private async bytes(path: string): Promise<Buffer> {
    const b = await getBytes(`${this.base}/${path}`, { ...this.opts, maxBytes: MAX_CHECKPOINT });
    if (!b) throw new MailmeshError('LOOKUP_UNAVAILABLE', `${this.base}/${path}: not found`);
    return b;
  }

  /**
   * A tile or entry bundle of `width` below `log/`. tlog-tiles: a log MAY delete the partial tile
   * of an older size once a wider one exists; the client then takes the full tile's (or the
   * current partial tile's, `widest`) prefix. Returns the bytes and the width fetched.
   */
  private async prefixOf(pathOf: (w: number) => string, width: number, widest: number): Promise<[Buffer, number]> {
    for (const w of new Set([width, TILE_WIDTH, widest])) {
      if (w < width) continue;
      const path = pathOf(w);
      // tlog-tiles: a tile holds at most 256 hashes; an entry bundle 256 entries of at most 65,535 bytes each.
      const maxBytes = path.startsWith('tile/entries/') ? TILE_WIDTH * (2 + MAX_LOG_ENTRY) : TILE_WIDTH * 32;
      const b = await getBytes(`${this.base}/log/${path}`, { ...this.opts, maxBytes });
      if (b) return [b, w];
    }
    throw new MailmeshError('LOOKUP_UNAVAILABLE', `${this.base}/log/${pathOf(width)}: not found`);
  }

  /** The width the tree of `size` has of tile `index` at tile `level` (tlog-tiles: ⌊size / 256^level⌋ hashes at that level). */
  private static width(level: number, index: number, size: number): number {
    return Math.min(TILE_WIDTH, Math.floor(size / 2 ** (8 * level)) - index * TILE_WIDTH);
  }

  private async json(path: string): Promise<Record<string, unknown>> {
    const v = await getJson(`${this.base}/${path}`, this.opts);
    if (v === undefined) throw new MailmeshError('NOT_FOUND', `${this.base}/${path}`);
    if (!v || typeof v !== 'object') throw invalid(`${path}: not a JSON object`);
    return v as Record<string, unknown>;
  }

  /** `GET /v1/log`: origin, vkey, size and checkpoint, as the directory says (not verified: the vkey is what a first use pins). */
  async info(): Promise<LogInfo> {
    const v = await this.json('v1/log');
    const { origin, vkey, size, checkpoint } = v;
    if (typeof origin !== 'string' || typeof vkey !== 'string' || typeof size !== 'number' || typeof checkpoint !== 'string') throw invalid('/v1/log: origin, vkey, size and checkpoint expected');
    return { origin, vkey, size, checkpoint };
  }

  /** `GET /log/checkpoint` (tlog-tiles), verified with `vkey`. */
  async checkpoint(vkey: string): Promise<VerifiedCheckpoint> {
    const c = verifyCheckpoint((await this.bytes('log/checkpoint')).toString('utf8'), vkey);
    this.latest = Math.max(this.latest, c.checkpoint.size);
    return c;
  }

  /** The tile (level, index) of the tree of `size`, full or partial (tlog-tiles: width = what the tree of `size` has of it). */
  private async tile(level: number, index: number, size: number): Promise<Buffer> {
    const width = TlogClient.width(level, index, size);
    const path = tilePath({ level, index, width });
    let t = this.tiles.get(path);
    if (!t) {
      const widest = TlogClient.width(level, index, Math.max(size, this.latest));
      const [b, w] = await this.prefixOf((w) => tilePath({ level, index, width: w }), width, widest);
      if (b.length !== 32 * w) throw invalid(`${tilePath({ level, index, width: w })}: ${b.length} bytes, not ${32 * w}`);
      t = b.subarray(0, 32 * width);
      this.tiles.set(path, t);
    }
    return t;
  }

  /** A HashReader over the tiles of the tree of `size`: Merkle level k is 2^(k mod 8) hashes of tile level ⌊k/8⌋ (tlog-tiles). */
  tileReader(size: number): HashReader {
    return async (wanted) => {
      const out: Buffer[] = [];
      for (const { level, index } of wanted) {
        const L = Math.floor(level / 8);
        const span = 2 ** (level % 8);
        let row: Buffer[] = [];
        for (let j = index * span; j < (index + 1) * span; j++) {
          const t = await this.tile(L, Math.floor(j / TILE_WIDTH), size);
          const at = (j % TILE_WIDTH) * 32;
          row.push(t.subarray(at, at + 32));
        }
        // RFC 9162 §2.1.1: a complete subtree is the balanced tree of its 2^r hashes.
        while (row.length > 1) row = row.flatMap((h, i) => (i % 2 ? [] : [nodeHash(h, row[i + 1]!)]));
        out.push(row[0]!);
      }
      return out;
    };
  }

  /** Recomputes the checkpoint's root from the tiles (tlog-tiles): TLOG_PROOF_FAILED when the tiles do not hash to it. */
  async checkTiles(c: VerifiedCheckpoint): Promise<void> {
    const root = await treeHash(c.checkpoint.size, this.tileReader(c.checkpoint.size));
    if (!root.equals(c.checkpoint.rootHash)) throw proofFailed(`the tiles of the tree of ${c.checkpoint.size} do not hash to the checkpoint's root`);
  }

  /** Entry `index` of the tree of `size`, from its entry bundle (tlog-tiles), checked against the level-0 tile. */
  async entry(index: number, size: number): Promise<Buffer> {
    const n = Math.floor(index / TILE_WIDTH);
    const width = TlogClient.width(0, n, size);
    const [b, w] = await this.prefixOf((w) => entryBundlePath(n, w), width, TlogClient.width(0, n, Math.max(size, this.latest)));
    const entries = decodeEntryBundle(b);
    const entry = entries[index % TILE_WIDTH];
    if (entries.length !== w || !entry) throw invalid(`${entryBundlePath(n, w)}: ${entries.length} entries, not ${w}`);
    // tlog-tiles: each entry hashes to its place in the level-0 tile.
    const tile = await this.tile(0, n, size);
    const at = (index % TILE_WIDTH) * 32;
    if (!leafHash(entry).equals(tile.subarray(at, at + 32))) throw proofFailed(`entry ${index}: its leaf hash is not the level-0 tile's`);
    return entry;
  }

  /** RFC 9162 §2.1.4.2: `older` is a prefix of `newer` (same log key), by the proof of `/v1/log/consistency`. */
  async consistency(older: VerifiedCheckpoint, newer: VerifiedCheckpoint): Promise<Buffer[]> {
    const [o, n] = [older.checkpoint, newer.checkpoint];
    if (o.size > n.size) throw proofFailed(`the saved checkpoint (size ${o.size}) is larger than the current one (size ${n.size}): the log was rolled back`);
    if (o.size === n.size) {
      if (!o.rootHash.equals(n.rootHash)) throw proofFailed(`two checkpoints of size ${o.size} with different roots: a split view`);
      return [];
    }
    // The empty tree is a prefix of every tree (RFC 9162 §2.1.4 leaves size 0 out).
    if (o.size === 0) return [];
    const v = await this.json(`v1/log/consistency?old=${o.size}&new=${n.size}`);
    const proof = base64List(v.proof, 'the consistency proof');
    if (!verifyConsistency(o.size, n.size, o.rootHash, n.rootHash, proof)) {
      throw proofFailed(`the tree of ${o.size} is not a prefix of the tree of ${n.size}`);
    }
    return proof;
  }

  /**
   * `GET /v1/domains/{domain}`: its `transparency` member (leaf index, inclusion proof, checkpoint),
   * the checkpoint verified with `vkey`, the proof (RFC 9162 §2.1.3.2) for the leaf hash of the
   * entry at that index, and the entry is a record of `domain` (and the record served, when signed).
   */
  async inclusion(domain: string, vkey: string, current?: VerifiedCheckpoint): Promise<VerifiedInclusion> {
    const record = await this.json(`v1/domains/${encodeURIComponent(domain)}`);
    const t = record.transparency as { leafIndex?: unknown; inclusionProof?: unknown; checkpoint?: unknown } | undefined;
    if (!t || typeof t !== 'object') throw proofFailed(`${domain}: the answer carries no transparency member`);
    if (typeof t.checkpoint !== 'string' || !Number.isSafeInteger(t.leafIndex)) throw invalid(`${domain}: transparency needs leafIndex and checkpoint`);
    const checkpoint = verifyCheckpoint(t.checkpoint, vkey);
    const leafIndex = t.leafIndex as number;
    const proof = base64List(t.inclusionProof, `${domain}'s inclusion proof`);
    const size = checkpoint.checkpoint.size;
    if (leafIndex < 0 || leafIndex >= size) throw proofFailed(`${domain}: leaf ${leafIndex} is outside the tree of ${size}`);
    const entry = await this.entry(leafIndex, Math.max(size, current?.checkpoint.size ?? 0));
    if (!verifyInclusion(leafIndex, size, leafHash(entry), proof, checkpoint.checkpoint.rootHash)) {
      throw proofFailed(`${domain}: the inclusion proof of leaf ${leafIndex} does not verify against the checkpoint of size ${size}`);
    }
    const about = entryDomain(entry);
    if (about !== domain) throw proofFailed(`leaf ${leafIndex} is a record of ${JSON.stringify(about ?? null)}, not of ${domain}`);
    // The record served must be, byte for byte, the version logged (the entry the directory would log for it).
    const expected = recordEntry(record as unknown as RecordDraft);
    if (!expected?.equals(entry)) throw proofFailed(`${domain}: the record served is not the one logged at leaf ${leafIndex}`);
    return { domain, leafIndex, entry, checkpoint };
  }
}
