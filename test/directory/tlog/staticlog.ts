import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';
import { appendHashes, consistencyProof, inclusionProof, leafHash, treeHash, type HashReader } from '../../../directory/tlog/merkle.js';
import { formatCheckpoint, signNote, verifierKey, type NoteSigner } from '../../../directory/tlog/note.js';
import { encodeEntryBundle, entryBundlePath, tilePath, tilesAt, TILE_WIDTH } from '../../../directory/tlog/tiles.js';

/**
 * A log built with directory/tlog's functions and served the way a directory serves it (routes
 * of the tserve brief: /log/checkpoint, /log/tile/…, /v1/log, /v1/log/consistency, /v1/domains/{d}
 * with `transparency`), from memory, by a minimal node:http server on port 0. It lets the
 * verifiers (verify.py, federation/tlogclient.ts) be tested apart from the store, and be
 * lied to: `faults` change what is served.
 */

export const ORIGIN = 'static.example/log';

/** The entry for a domain: a signed record as a directory logs it (`{payload, signature}`, payload canonical JSON). */
export function recordEntry(domain: string, serial: number): Buffer {
  return Buffer.from(JSON.stringify({ payload: JSON.stringify({ domain, serial, type: 'mailmesh.domain-record', v: 1 }), signature: `sig-${domain}-${serial}` }));
}

export function newSigner(name = ORIGIN): { signer: NoteSigner; vkey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { signer: { name, privateKey }, vkey: verifierKey(name, publicKey) };
}

export class MemoryLog {
  readonly entries: Buffer[] = [];
  private readonly hashes = new Map<string, Buffer>();
  readonly read: HashReader = async (wanted) =>
    wanted.map(({ level, index }) => {
      const h = this.hashes.get(`${level}/${index}`);
      if (!h) throw new Error(`no stored hash ${level}/${index}`);
      return h;
    });

  async append(entry: Buffer): Promise<number> {
    const index = this.entries.length;
    for (const s of await appendHashes(index, leafHash(entry), this.read)) this.hashes.set(`${s.level}/${s.index}`, s.hash);
    this.entries.push(entry);
    return index;
  }

  async checkpoint(signer: NoteSigner, size = this.entries.length): Promise<string> {
    return signNote(formatCheckpoint({ origin: signer.name, size, rootHash: await treeHash(size, this.read), extensions: [] }), signer);
  }

  /** Every tile and entry bundle of the tree of `size` (tlog-tiles), by path below the prefix. */
  tiles(size: number, into = new Map<string, Buffer>()): Map<string, Buffer> {
    for (let level = 0; size >= TILE_WIDTH ** level; level++) {
      for (const t of tilesAt(level, size)) {
        const hashes = Array.from({ length: t.width }, (_, j) => this.hashes.get(`${8 * level}/${t.index * TILE_WIDTH + j}`)!);
        into.set(tilePath(t), Buffer.concat(hashes));
        if (level === 0) into.set(entryBundlePath(t.index, t.width), encodeEntryBundle(this.entries.slice(t.index * TILE_WIDTH, t.index * TILE_WIDTH + t.width)));
      }
    }
    return into;
  }
}

/** What the server serves wrongly. */
export interface Faults {
  /** The transparency member of another domain's answer in place of this one's: `[asked, served]`. */
  swapProof?: [string, string];
  /** An entry whose bytes are changed in its bundle. */
  entry?: number;
  /** A checkpoint note served instead of the log's. */
  checkpoint?: string;
}

/** Serves `log` at its current size (and the partial tiles of `olderSizes`, whose checkpoints were published). */
export async function serveLog(t: Test, log: MemoryLog, signer: NoteSigner, vkey: string, o: { olderSizes?: number[]; faults?: Faults } = {}) {
  const faults = o.faults ?? {};
  const size = log.entries.length;
  const files = log.tiles(size);
  for (const s of o.olderSizes ?? []) log.tiles(s, files);
  const checkpoint = await log.checkpoint(signer);
  const domainIndex = new Map(log.entries.map((e, i) => [(JSON.parse(JSON.parse(e.toString()).payload) as { domain: string }).domain, i]));
  const b64 = (l: Buffer[]) => l.map((h) => h.toString('base64'));
  const transparency = async (domain: string) => {
    const i = domainIndex.get(domain)!;
    return { leafIndex: i, inclusionProof: b64(await inclusionProof(i, size, log.read)), checkpoint };
  };
  /** The bundle holding `faults.entry`, with that entry changed. */
  const tampered = (p: string): Buffer | undefined => {
    if (faults.entry === undefined) return undefined;
    const n = Math.floor(faults.entry / TILE_WIDTH);
    if (p !== entryBundlePath(n, Math.min(TILE_WIDTH, size - n * TILE_WIDTH))) return undefined;
    const entries = log.entries.slice(n * TILE_WIDTH, (n + 1) * TILE_WIDTH);
    entries[faults.entry % TILE_WIDTH] = Buffer.from(entries[faults.entry % TILE_WIDTH]!.toString().replace('sig-', 'SIG-'));
    return encodeEntryBundle(entries);
  };
  const answer = async (url: URL): Promise<[number, string | Buffer]> => {
    const path = url.pathname;
    if (path === '/log/checkpoint') return [200, faults.checkpoint ?? checkpoint];
    if (path.startsWith('/log/')) {
      const f = tampered(path.slice('/log/'.length)) ?? files.get(path.slice('/log/'.length));
      return f ? [200, f] : [404, 'not found'];
    }
    if (path === '/v1/log') return [200, JSON.stringify({ origin: signer.name, vkey, size, checkpoint })];
    if (path === '/v1/log/consistency') {
      const [a, b] = [Number(url.searchParams.get('old')), Number(url.searchParams.get('new'))];
      return [200, JSON.stringify({ proof: b64(await consistencyProof(a, b, log.read)) })];
    }
    const m = /^\/v1\/domains\/([^/]+)$/.exec(path);
    if (m && domainIndex.has(decodeURIComponent(m[1]!))) {
      const domain = decodeURIComponent(m[1]!);
      const shown = faults.swapProof?.[0] === domain ? faults.swapProof[1] : domain;
      const entry = JSON.parse(log.entries[domainIndex.get(domain)!]!.toString()) as { payload: string; signature: string };
      return [200, JSON.stringify({ domain, signed: entry, transparency: await transparency(shown) })];
    }
    return [404, JSON.stringify({ error: { code: 'NOT_FOUND' } })];
  };
  const server: Server = createServer((req, res) => {
    answer(new URL(req.url ?? '/', 'http://x')).then(
      ([status, body]) => res.writeHead(status).end(body),
      (e: unknown) => res.writeHead(500).end(String(e)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, checkpoint, faults };
}

/** A log of `n` records of domains d0.test … d{n-1}.test. */
export async function domainLog(n: number): Promise<MemoryLog> {
  const log = new MemoryLog();
  for (let i = 0; i < n; i++) await log.append(recordEntry(`d${i}.test`, i + 1));
  return log;
}

/** A directory in front of `base` that serves `served`'s transparency member in `asked`'s answer (a lie the proof must expose). */
export async function lyingProxy(t: Test, base: string, asked: string, served: string): Promise<string> {
  const server = createServer((req, res) => {
    const forward = async () => {
      const r = await fetch(base + req.url);
      let body = Buffer.from(await r.arrayBuffer());
      if (req.url === `/v1/domains/${asked}`) {
        const other = (await (await fetch(`${base}/v1/domains/${served}`)).json()) as { transparency: unknown };
        body = Buffer.from(JSON.stringify({ ...(JSON.parse(body.toString()) as object), transparency: other.transparency }));
      }
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' }).end(body);
    };
    forward().catch((e: unknown) => res.writeHead(502).end(String(e)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
