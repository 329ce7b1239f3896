import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest, RouteHandlerMethod } from 'fastify';
import type { Directory } from '../directory.js';
import { requireBearer } from '../bearer.js';
import type { Metrics } from '../metrics.js';
import { renderReference } from './apidocs.js';
import { loadOpenApi, openApiPath } from './openapi.js';

/** Probes: asked every few seconds by a supervisor or Prometheus, so never logged above trace (docs/observability.md "Logs"). */
export const PROBES: ReadonlySet<string> = new Set(['/healthz', '/metrics']);

/** The longest /metrics waits for the store's ping before it reports the store down. */
const PING_TIMEOUT_MS = 2000;

/**
 * One log line per request, when it is answered, at debug (a probe at trace), and
 * `mailmesh_http_requests_total{method,route,status}`: the route as openapi.yaml names it
 * (`/v1/domains/:domain`; `unmatched` for a 404 without a route, so scanners make no new
 * series) and the status class (`2xx` … `5xx`). Fastify's own two lines per request are off
 * (`logController` in http.ts).
 */
export function observeRequests(app: FastifyInstance, metrics: Metrics): void {
  const requests = metrics.counter('mailmesh_http_requests_total', 'HTTP requests answered, by method, route pattern and status class', ['method', 'route', 'status']);
  app.addHook('onResponse', async (req: FastifyRequest, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    requests.inc({ method: req.method, route, status: `${Math.floor(status / 100)}xx` });
    const line = { method: req.method, url: req.url, status, ms: Math.round(reply.elapsedTime) };
    if (PROBES.has(req.url.split('?')[0]!)) req.log.trace(line, 'request');
    else req.log.debug(line, 'request');
  });
}

/** Resolves true when the store answers within PING_TIMEOUT_MS. */
async function storeUp(directory: Directory): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS)));
  try {
    return await Promise.race([directory.ping().then(() => true, () => false), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * /metrics, /healthz, /openapi.yaml and /docs. /metrics adds the directory's serial and
 * `mailmesh_store_up` (1 when the store answers its ping), both read at each scrape; with
 * `token` set (http.metricsToken) it needs `Authorization: Bearer <token>`, else 401 (RFC 6750 §3).
 */
export async function statusHandlers(directory: Directory, metrics: Metrics, token?: string): Promise<Record<string, RouteHandlerMethod>> {
  let lastSerial = await directory.serial().catch(() => 0);
  metrics.collect('mailmesh_directory_serial', 'The store serial (grows with every change)', 'gauge', () => [{ value: lastSerial }]);
  metrics.collect('mailmesh_store_up', 'Whether the store answers a ping (1) or not (0), asked at each scrape', 'gauge', async () => [{ labels: { store: directory.storeKind }, value: (await storeUp(directory)) ? 1 : 0 }], ['store']);
  const yaml = readFileSync(openApiPath(), 'utf8');
  const reference = renderReference(loadOpenApi());
  return {
    async getMetrics(req, reply) {
      if (token) requireBearer(req.headers.authorization, token, 'http.metricsToken');
      lastSerial = await directory.serial().catch(() => lastSerial);
      return reply.type(metrics.contentType).send(await metrics.render());
    },

    async getHealth(_req, reply) {
      try {
        await directory.ping();
        return { status: 'ok', store: directory.storeKind, serial: await directory.serial() };
      } catch {
        return reply.code(503).send({ status: 'unavailable', store: directory.storeKind });
      }
    },

    async getOpenApi(_req, reply) {
      return reply.type('application/yaml; charset=utf-8').send(yaml);
    },

    async getApiReference(_req, reply) {
      // Nothing but the page itself and its own inline style: no script, no request elsewhere.
      reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
      return reply.type('text/html; charset=utf-8').send(reference);
    },
  };
}
