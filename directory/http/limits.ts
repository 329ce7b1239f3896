import type { FastifyInstance } from 'fastify';
import type { Socket } from 'node:net';
import { EdgeGuard, ipMatcher, type EdgeLimits } from '../edge.js';
import { CATALOGUE } from '../errors.js';
import type { Metrics } from '../metrics.js';

/** Node's HTTP server timeouts (docs/security/edges.md "HTTP"). */
export interface HttpTimeouts {
  /** The request head must be in within this (server.headersTimeout). */
  headersMs: number;
  /** The whole request must be in within this (server.requestTimeout); also the most a socket may sit idle. */
  requestMs: number;
  /** A kept-alive connection with no request is closed after this (server.keepAliveTimeout). */
  idleMs: number;
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, requestMs: 30_000, idleMs: 5_000 };

/** Node checks the header and request timeouts this often (its default, 30 s, would let them run 30 s late). */
const TIMEOUT_CHECK_MS = 1000;

/**
 * Fastify's server options for the timeouts and the trusted reverse proxies (their
 * X-Forwarded-For sets req.ip); `tls`, when given, gets the timeout check interval too.
 */
export function serverOptions(timeouts: Partial<HttpTimeouts> = {}, trustProxy: string[] = [], tls?: object) {
  const t = { ...DEFAULT_HTTP_TIMEOUTS, ...timeouts };
  if (trustProxy.length) ipMatcher(trustProxy); // CONFIG_INVALID for an entry that is neither address nor CIDR
  return {
    ...(tls ? { https: { ...tls, connectionsCheckingInterval: TIMEOUT_CHECK_MS } } : { http: { connectionsCheckingInterval: TIMEOUT_CHECK_MS } }),
    connectionTimeout: t.requestMs,
    requestTimeout: t.requestMs,
    keepAliveTimeout: t.idleMs,
    clientErrorHandler,
    ...(trustProxy.length ? { trustProxy } : {}),
  };
}

/**
 * A JSON error written straight to a socket that has no request object (RFC 9112 §2.1 message),
 * then close: the code and the catalogue's text, no request ID (no request was read).
 */
function rawError(socket: Socket, status: number, reason: string, code: 'BAD_REQUEST' | 'TOO_MANY_CONNECTIONS'): void {
  const body = JSON.stringify({ error: { code, message: CATALOGUE[code].message } });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  socket.setTimeout(1000, () => socket.destroy());
}

/**
 * What Node's HTTP parser refuses (malformed request line or headers, RFC 9112 §2.2), headers
 * too large (RFC 6585 §5: 431) or too slow (RFC 9110 §15.5.9: 408): a JSON error with a stable code.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) return void socket.destroy();
  if (err.code === 'HPE_HEADER_OVERFLOW') return rawError(socket, 431, 'Request Header Fields Too Large', 'BAD_REQUEST');
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return rawError(socket, 408, 'Request Timeout', 'BAD_REQUEST');
  rawError(socket, 400, 'Bad Request', 'BAD_REQUEST');
}

/** RFC 9110 §15.6.4: 503 to a connection over the limits, then close (plain HTTP; a TLS one is just closed). */
function refuse(socket: Socket, tls: boolean): void {
  if (tls) return void socket.destroy();
  rawError(socket, 503, 'Service Unavailable', 'TOO_MANY_CONNECTIONS');
}

/**
 * Requests a connection may have answered-but-unsent at once. Node reads no further request while
 * responses queue, but it parses (and the face answers) every pipelined request of a chunk it has
 * already read: one read of small GETs queues thousands of responses, each held in memory until
 * the one before it is sent (test/hostile/network.test.ts: +152 MiB from four such clients). No
 * browser or HTTP client pipelines this deep (RFC 9112 §9.3.2 lets a server close instead).
 */
export const MAX_PIPELINED = 64;

/** Closes a connection with more than MAX_PIPELINED requests whose responses are not yet out. */
function limitPipelining(server: FastifyInstance['server']): void {
  const waiting = new WeakMap<Socket, number>();
  server.on('request', (req: { socket: Socket }, res: { once(e: 'close', f: () => void): void }) => {
    const socket = req.socket;
    const n = (waiting.get(socket) ?? 0) + 1;
    waiting.set(socket, n);
    res.once('close', () => waiting.set(socket, (waiting.get(socket) ?? 1) - 1));
    if (n > MAX_PIPELINED) socket.destroy();
  });
}

/**
 * After a write that left bytes waiting, the connection has drainTimeoutMs to make progress, or
 * it is closed; one whose unsent responses pass maxPendingBytes is closed at once.
 */
function stallWhenFull(guard: EdgeGuard, socket: Socket): void {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    const ok = write(...args);
    if (guard.overPending(socket)) socket.destroy();
    else if (socket.writableLength > 0) guard.stall(socket);
    return ok;
  }) as Socket['write'];
}

/**
 * The HTTP face's edge (directory/edge.ts): connections per address (trusted proxies exempt) and
 * in total, a lifetime, and a connection whose responses wait unread (Node stops reading its
 * pipelined requests meanwhile) is closed after drainTimeoutMs.
 */
export function guardHttp(
  app: FastifyInstance,
  opts: { limits?: Partial<EdgeLimits>; timeouts?: Partial<HttpTimeouts>; trustProxy?: string[]; tls: boolean; metrics?: Metrics; logger?: { warn(o: object, m?: string): void } },
): EdgeGuard {
  const trusted = opts.trustProxy?.length ? ipMatcher(opts.trustProxy) : undefined;
  const guard = new EdgeGuard('http', opts.limits, { metrics: opts.metrics, logger: opts.logger, exempt: trusted });
  app.server.on('connection', (socket: Socket) => {
    if (guard.admit(socket)) refuse(socket, opts.tls);
    else if (!opts.tls) stallWhenFull(guard, socket);
  });
  // HTTPS writes go through the TLS socket, not the TCP one.
  if (opts.tls) app.server.on('secureConnection', (socket: Socket) => stallWhenFull(guard, socket));
  limitPipelining(app.server);
  // The requests of a read Node had parsed before limitPipelining closed their connection: skip
  // them before any work (first hook; their responses would go nowhere).
  app.addHook('onRequest', async (req, reply) => {
    if (req.raw.socket?.destroyed) reply.hijack();
  });
  app.server.headersTimeout = { ...DEFAULT_HTTP_TIMEOUTS, ...opts.timeouts }.headersMs;
  return guard;
}
