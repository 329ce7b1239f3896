import type { FastifyBaseLogger, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Directory } from '../directory.js';
import { MailmeshError } from '../errors.js';
import type { DomainRecord } from '../record.js';
import type { TransparencyLog } from '../tlog/log.js';
import { parseTilePath, TILE_WIDTH } from '../tlog/tiles.js';

/**
 * The transparency log on the HTTP face (docs/transparency.md "Served"): C2SP tlog-tiles under
 * `/log/` (https://c2sp.org/tlog-tiles: checkpoint, tiles, entry bundles) and JSON under `/v1/log`.
 */

/** A tile's index is several path segments (`x001/x234/067.p/5`): encoded into one (`%2F`), so that one route per operation takes it. */
export function tileUrl(req: IncomingMessage): string {
  const url = req.url ?? '/';
  return url.replace(/^(\/log\/tile\/(?:entries|[0-9]+)\/)([^?]*)/, (_, head: string, rest: string) => head + rest.replaceAll('/', '%2F'));
}

function logOf(directory: Directory): TransparencyLog {
  if (!directory.log) throw new MailmeshError('TLOG_DISABLED');
  return directory.log;
}

/**
 * tlog-tiles: a full tile or bundle never changes (a year, immutable); a partial one is served
 * with a short life, as the brief of the API asks (it too never changes, but the full one replaces it).
 */
async function sendTile(directory: Directory, path: string, reply: FastifyReply): Promise<FastifyReply> {
  const id = parseTilePath(path);
  if (!id) throw new MailmeshError('TLOG_INVALID', `not a tile path: ${path}`);
  const bytes = await logOf(directory).tile(id);
  if (!bytes) throw new MailmeshError('NOT_FOUND', `${path} is not in the tree yet`);
  reply.header('cache-control', id.width === TILE_WIDTH ? 'public, max-age=31536000, immutable' : 'public, max-age=60');
  return reply.type('application/octet-stream').send(bytes);
}

/** The handlers of the operations tagged `log` in openapi.yaml. */
export function logHandlers(directory: Directory): Record<string, RouteHandlerMethod> {
  return {
    // tlog-tiles "Checkpoints": text/plain; mutable, so cached for a few seconds at most.
    async getLogCheckpoint(_req, reply) {
      const cp = await logOf(directory).checkpoint();
      return reply.header('cache-control', 'public, max-age=5').type('text/plain; charset=utf-8').send(cp.note);
    },

    async getLogTile(req, reply) {
      const { level, index } = req.params as { level: string; index: string };
      return sendTile(directory, `tile/${level}/${index}`, reply);
    },

    async getLogEntries(req, reply) {
      return sendTile(directory, `tile/entries/${(req.params as { index: string }).index}`, reply);
    },

    async getLog(_req, reply) {
      const log = logOf(directory);
      const cp = await log.checkpoint();
      reply.header('cache-control', 'public, max-age=5');
      return { origin: await log.origin(), vkey: await log.verifierKey(), size: cp.size, checkpoint: cp.note };
    },

    async getLogConsistency(req: FastifyRequest) {
      const q = req.query as { old: number; new: number };
      const proof = await logOf(directory).consistency(q.old, q.new);
      return { old: q.old, new: q.new, proof: proof.map((h) => h.toString('base64')) };
    },
  };
}

/** GET /v1/domains/{domain}: the record with a `transparency` member when the directory keeps a log and the version served is in it. */
export async function withTransparency(directory: Directory, record: DomainRecord, log?: FastifyBaseLogger): Promise<DomainRecord & { transparency?: unknown }> {
  // The record is served with or without its proof: a log that cannot prove (a store that lost
  // hashes, went back after a failover) never keeps a key from being found.
  const transparency = await directory.log?.prove(record).catch((err: unknown) => {
    log?.warn({ err, domain: record.domain }, 'transparency proof unavailable; record served without it');
    return undefined;
  });
  return transparency ? { ...record, transparency } : record;
}
