import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, type RouteHandlerMethod } from 'fastify';
import type { TlsOptions } from 'node:tls';
import rateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Directory } from '../directory.js';
import type { KvStore } from '../store/store.js';
import { parseDomain } from '../domain.js';
import type { DomainRecord, JoinAnswer } from '../record.js';
import { Metrics } from '../metrics.js';
import { MailmeshError } from '../errors.js';
import { pemToDer } from '../smime.js';
import type { EdgeLimits } from '../edge.js';
import { negotiate } from './accept.js';
import { refuseLargeBeforeContinue, registerJsonBody } from './body.js';
import { newRequestId, registerErrorHandling, sendError } from './errors.js';
import { guardHttp, serverOptions, type HttpTimeouts } from './limits.js';
import { crlHandlers } from './crl.js';
import { keyServerHandlers } from './keyserver.js';
import { PublishedKeys } from './keys.js';
import { loadOpenApi, operations, registerOperations, type OpenApiDocument } from './openapi.js';
import { observeRequests, PROBES, statusHandlers } from './observe.js';
import { tlsMaterial, type TlsConfig } from './tls.js';
import { acmeHandlers, type AcmeResponder } from './acme.js';
import { logHandlers, tileUrl, withTransparency } from './tlog.js';
import type { TlsHolder } from '../tls.js';
import type { Server as TlsServer } from 'node:tls';

export { httpStatus, logRefusal } from './errors.js';

/** The `http` section of the configuration that the face reads (cli/config.ts). */
export interface HttpConfig {
  /** Listen address, also put into a self-signed certificate. */
  host?: string;
  tls?: TlsConfig;
  /** Requests per client address and window; max 0 turns the limit off. */
  rateLimit?: { max: number; windowSec: number };
  /** Reverse proxies (addresses, CIDRs) whose X-Forwarded-For names the client; default none. */
  trustProxy?: string[];
  /** Connections, unsent bytes, lifetime (directory/edge.ts). */
  limits?: Partial<EdgeLimits>;
  timeouts?: Partial<HttpTimeouts>;
  /** With it, GET /metrics needs `Authorization: Bearer <metricsToken>` (docs/observability.md). */
  metricsToken?: string;
}

/** Where rate-limit counters live when a cluster's nodes share them: a store's atomic counters. */
export type RateCounters = Pick<KvStore, 'kvIncr'>;

/** Join, leave, veto and import (federation/, wired by cli/app.ts); without them these operations answer FEDERATION_DISABLED. */
export interface FederationOps {
  join(body: unknown): Promise<JoinAnswer>;
  leave(domain: string, body: unknown): Promise<DomainRecord>;
  /** A veto of a pending key recovery, signed by the held key. */
  veto?(domain: string, body: unknown): Promise<DomainRecord>;
  importKeys?(body: unknown, authorization: string | undefined): Promise<DomainRecord>;
}

export interface HttpOptions {
  directory: Directory;
  logger: FastifyBaseLogger;
  federation?: FederationOps;
  /** Without it: plain HTTP, no rate limit. */
  config?: HttpConfig;
  /** Served at /metrics (Prometheus text format); without it, /metrics shows only the directory's own figures. */
  metrics?: Metrics;
  /** The WebMail pages (gateway/webmail, wired by cli/app.ts); without them those operations answer NOT_FOUND. */
  webmail?: WebmailHandlers;
  /**
   * Count the rate limit here (a store shared by the nodes of a cluster, so a client's
   * requests count once whichever node they reach); without it, each process counts alone.
   */
  rateCounters?: RateCounters;
  /** ACME (cli/acme.ts): http-01 answers, and on HTTPS the tls-alpn-01 hooks (RFC 8737). */
  acme?: AcmeResponder & { tlsHooks?: Pick<TlsOptions, 'SNICallback' | 'ALPNCallback'> };
  /** HTTPS material replaceable at run time (SIGHUP, ACME): new handshakes take the new pair. Wins over `config.tls`. */
  tls?: TlsHolder;
}

/** Handlers of the operations tagged `webmail` in openapi.yaml, and a hook to add their body parser (called in their own context only). */
export interface WebmailHandlers {
  handlers: Record<string, RouteHandlerMethod>;
  register(app: FastifyInstance): void;
  /** The largest body its routes take (bytes). */
  bodyLimit?: number;
}

/**
 * @fastify/rate-limit's store interface (`incr(key, cb, timeWindow)`, `child(route)`) on shared
 * counters: a fixed window per client key that starts with its first request. A store that
 * cannot be reached skips the limit (`skipOnError`): the request itself then answers 503.
 */
function sharedRateStore(counters: RateCounters, windowMs: number, prefix = 'ratelimit:'): FastifyRateLimitStoreCtor {
  return class implements FastifyRateLimitStore {
    /** The plugin passes the route's window as a third argument (not in its type declarations). */
    incr(key: string, cb: (err: Error | null, res?: { current: number; ttl: number }) => void, timeWindow = windowMs): void {
      counters.kvIncr(prefix + key, timeWindow).then((r) => cb(null, { current: r.count, ttl: r.ttlMs }), (err: Error) => cb(err));
    }
    /** Routes with a limit of their own count apart; at run time the plugin passes the route as `routeInfo`. */
    child(params: object): FastifyRateLimitStore {
      const route = (params as { routeInfo?: { method?: unknown; url?: unknown } }).routeInfo;
      return new (sharedRateStore(counters, windowMs, `${prefix}${String(route?.method)}${String(route?.url)}:`))({});
    }
  };
}

/** The operations of openapi.yaml with (`tagged`) or without the tag, as a document of their own. */
function byTag(doc: OpenApiDocument, tag: string, tagged: boolean): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const { path, method, op } of operations(doc)) {
    if (((op as { tags?: string[] }).tags?.includes(tag) ?? false) === tagged) paths[path] = { ...paths[path], [method]: op };
  }
  return { ...doc, paths };
}

/**
 * Every `webmail` operation gets its handler, or one that says WebMail is off. They live in a
 * fastify context of their own (encapsulation): the form body parser WebMail adds there, with
 * its larger limit, applies to these routes only; elsewhere a form is an unsupported media type (415).
 */
async function registerWebmail(app: FastifyInstance, w: WebmailHandlers | undefined): Promise<void> {
  const off: RouteHandlerMethod = async () => {
    throw new MailmeshError('NOT_FOUND', 'WebMail is not enabled');
  };
  const doc = byTag(loadOpenApi(), 'webmail', true);
  const ids = [...operations(doc)].map((o) => o.op.operationId);
  await app.register(async (scope) => {
    w?.register(scope);
    registerOperations(scope, doc, Object.fromEntries(ids.map((id) => [id, w?.handlers[id] ?? off])));
  });
}

export const BODY_LIMIT = 256 * 1024;

// Representations of a domain key, the default first (see docs/http.md "Content negotiation").
const OPENPGP_TYPES = ['application/octet-stream', 'application/pgp-keys', 'text/plain'] as const;
const SMIME_TYPES = ['application/pkix-cert', 'application/pem-certificate-chain', 'application/x-pem-file', 'text/plain'] as const;

/** The directory's HTTP face: routes from openapi.yaml, JSON errors with stable codes. HTTPS when configured. */
export async function createHttpServer(opts: HttpOptions): Promise<FastifyInstance> {
  const { directory } = opts;
  const tls = opts.tls?.current() ?? (await tlsMaterial(opts.config?.tls, opts.config?.host ?? '127.0.0.1'));
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: BODY_LIMIT,
    // Every route, HEAD included, is declared in openapi.yaml.
    exposeHeadRoutes: false,
    // A random request ID (errors.ts), in the log as `reqId` and in every error reply.
    genReqId: newRequestId,
    // One line per request, at debug, from observe.ts; not fastify's two at info.
    logController: new LogController({ disableRequestLogging: true }),
    // Malformed URLs (bad %-escapes) get the same JSON error as everything else.
    frameworkErrors: (err, req, reply) => sendError(req, reply, new MailmeshError('BAD_REQUEST', err.message)),
    // A tlog-tiles index spans path segments: one route takes it (tlog.ts).
    rewriteUrl: tileUrl,
    ...serverOptions(opts.config?.timeouts, opts.config?.trustProxy, tls && { ...tls, ...opts.acme?.tlsHooks }),
  }) as unknown as FastifyInstance;
  const metrics = opts.metrics ?? new Metrics();
  const off = opts.tls?.onChange((p) => (app.server as unknown as TlsServer).setSecureContext(p));
  if (off) app.addHook('onClose', async () => void off());
  const guard = guardHttp(app, { ...opts.config, tls: tls !== undefined, metrics, logger: opts.logger });
  registerJsonBody(app);
  refuseLargeBeforeContinue(app, Math.max(BODY_LIMIT, opts.webmail?.bodyLimit ?? 0));

  registerErrorHandling(app, guard);
  observeRequests(app, metrics);

  // Everything served is public and read-only: any web page may read it (Fetch standard CORS).
  app.addHook('onRequest', async (req, reply) => {
    if (req.method === 'GET' || req.method === 'HEAD') reply.header('access-control-allow-origin', '*');
  });

  const limit = opts.config?.rateLimit;
  if (limit && limit.max > 0) {
    await app.register(rateLimit, {
      max: limit.max,
      timeWindow: limit.windowSec * 1000,
      ...(opts.rateCounters && { store: sharedRateStore(opts.rateCounters, limit.windowSec * 1000), skipOnError: true }),
      allowList: (req) => PROBES.has(req.url),
      errorResponseBuilder: (_req, ctx) => new MailmeshError('RATE_LIMITED', `retry after ${ctx.after}`),
    });
  }

  await registerWebmail(app, opts.webmail);
  const keys = new PublishedKeys(directory);
  app.addHook('onClose', async () => keys.close());
  registerOperations(app, byTag(loadOpenApi(), 'webmail', false), {
    ...(await statusHandlers(directory, metrics, opts.config?.metricsToken)),
    ...recordHandlers(directory, keys),
    ...crlHandlers(directory),
    ...keyServerHandlers(directory, keys),
    ...federationHandlers(opts),
    ...acmeHandlers(opts.acme),
    ...logHandlers(directory),
  });
  return app;
}

const domainParam = (req: FastifyRequest) => (req.params as { domain: string }).domain;

/** Sync and a domain's record, OpenPGP key and S/MIME certificate. */
function recordHandlers(directory: Directory, keys: PublishedKeys): Record<string, RouteHandlerMethod> {
  return {
    // Sync: records changed after `since`, tombstones included; `next` is the `since` of the next page.
    async listDomains(req) {
      const { since, limit } = req.query as { since: number; limit: number };
      const { records, serial } = await directory.changesSince(since, limit + 1);
      const page = records.slice(0, limit);
      return { serial, records: page, next: records.length > limit ? page[page.length - 1]!.serial : null };
    },

    async getDomain(req) {
      return withTransparency(directory, await directory.getRecord(domainParam(req)), req.log);
    },

    async getDomainOpenPgp(req, reply) {
      const { record, key } = await keys.ofDomain(domainParam(req));
      const type = negotiate(req.headers.accept, OPENPGP_TYPES);
      reply.header('vary', 'Accept');
      // RFC 4880 §11.1 transferable public key; §6.2 ASCII armor for the text types.
      if (type === 'application/octet-stream') return reply.type(type).send(Buffer.from(key.write()));
      return reply.type(type === 'text/plain' ? 'text/plain; charset=utf-8' : type).send(record.keys.openpgp!.armored);
    },

    async getDomainSmime(req, reply) {
      const record = await directory.getRecord(domainParam(req));
      const smime = record.keys.smime;
      if (!smime) throw new MailmeshError('NOT_FOUND', `${record.domain} publishes no S/MIME certificate`);
      const type = negotiate(req.headers.accept, SMIME_TYPES);
      reply.header('vary', 'Accept');
      // RFC 2585 §4.1: application/pkix-cert is one DER certificate (the leaf); RFC 8555 §9.1:
      // application/pem-certificate-chain is the PEM chain, leaf first (RFC 7468 §5 blocks).
      if (type === 'application/pkix-cert') return reply.type(type).send(pemToDer(smime.chain[0]!));
      const pem = smime.chain.map((c) => c.trim() + '\n').join('');
      return reply.type(type === 'text/plain' ? 'text/plain; charset=utf-8' : type).send(pem);
    },
  };
}

/** Join, veto, leave and import: federation/'s operations, or FEDERATION_DISABLED without them. */
function federationHandlers(opts: HttpOptions): Record<string, RouteHandlerMethod> {
  return {
    async joinDomain(req, reply) {
      if (!opts.federation) throw new MailmeshError('FEDERATION_DISABLED', 'join');
      const { record, pending, unchanged } = await opts.federation.join(req.body);
      // RFC 9110 §15.3.3: 202, the change is accepted for later (a recovery's hold-down); the held record.
      // §15.3.1: 200 for a repeated post of the record held, which created nothing.
      return reply.code(pending ? 202 : unchanged ? 200 : 201).send(record);
    },

    async vetoRecovery(req) {
      const domain = parseDomain(domainParam(req));
      if (!opts.federation?.veto) throw new MailmeshError('FEDERATION_DISABLED', 'veto');
      return opts.federation.veto(domain, req.body);
    },

    async leaveDomain(req) {
      const domain = parseDomain(domainParam(req));
      if (!opts.federation) throw new MailmeshError('FEDERATION_DISABLED', 'leave');
      return opts.federation.leave(domain, req.body);
    },

    async importKeys(req, reply) {
      if (!opts.federation?.importKeys) throw new MailmeshError('FEDERATION_DISABLED', 'import');
      return reply.code(201).send(await opts.federation.importKeys(req.body, req.headers.authorization));
    },
  };
}
