import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EdgeGuard } from '../edge.js';
import { asMailmeshError, MailmeshError, type ErrorCode, type ErrorKind } from '../errors.js';

/** The edge mapping from error kinds to HTTP status codes (RFC 9110 §15). */
const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
  forbidden: 403,
  unavailable: 503,
  internal: 500,
};
/** Codes with a status of their own: RFC 6585 §4 (429), RFC 9110 §15.5.14 (413), §15.5.2 (401), §15.5.16 (415). */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = { RATE_LIMITED: 429, BODY_TOO_LARGE: 413, UNAUTHORIZED: 401, MEDIA_TYPE_UNSUPPORTED: 415 };
/** Framework errors by their status: what a request got wrong (RFC 9110 §15.5). */
const CODE_BY_STATUS: Record<number, ErrorCode> = { 404: 'NOT_FOUND', 413: 'BODY_TOO_LARGE', 415: 'MEDIA_TYPE_UNSUPPORTED' };

/** RFC 6750 §3: the challenge of every 401, whether the token was missing or wrong (they answer alike). */
export const BEARER_CHALLENGE = 'Bearer realm="mailmesh"';

export function httpStatus(e: MailmeshError): number {
  return STATUS_BY_CODE[e.code] ?? STATUS[e.kind];
}

/** A request's ID (fastify `genReqId`): random, so IDs neither repeat across restarts and nodes nor tell how busy a node is. */
export function newRequestId(): string {
  return randomUUID();
}

/** The JSON error body (openapi.yaml `Error`): the code, the text a client may see (errors.ts), the request ID. */
export function errorBody(e: MailmeshError, requestId: string): string {
  return JSON.stringify({ error: { code: e.code, message: e.publicMessage, requestId } });
}

/**
 * Logs a refusal's detail under the request's ID (`reqId`, bound to `req.log`): a fault or an
 * unavailable dependency as an error; what the client got wrong as info when it asked for a change
 * (a refused join, import, WebMail form), at debug for a read (GET, HEAD: a scanner's 404s are no
 * info lines; docs/observability.md "Logs").
 */
export function logRefusal(log: FastifyBaseLogger, e: MailmeshError, err: unknown = e, method = 'POST'): void {
  if (e.kind === 'internal' || e.kind === 'unavailable') log.error({ code: e.code, detail: e.detail, err }, 'request failed');
  else if (method === 'GET' || method === 'HEAD') log.debug({ code: e.code, detail: e.detail }, 'request refused');
  else log.info({ code: e.code, detail: e.detail }, 'request refused');
}

/**
 * The one error reply of the HTTP face: status from the code, `X-Request-Id` and the JSON body;
 * the detail stays in the log (logRefusal), under the same ID. A 401 carries the bearer challenge.
 */
export function sendError(req: FastifyRequest, reply: FastifyReply, e: MailmeshError, err: unknown = e): FastifyReply {
  logRefusal(req.log, e, err, req.method);
  const status = httpStatus(e);
  if (status === 401) reply.header('www-authenticate', BEARER_CHALLENGE);
  return reply.code(status).header('x-request-id', req.id).type('application/json').send(errorBody(e, req.id));
}

/** What fastify reports about a request it refused before a handler (validation, parsers, limits). */
type FrameworkError = Error & { validation?: unknown; statusCode?: number };

/** The error and not-found handlers: every refusal is a MailmeshError with a stable code; a fault is counted by `guard`. */
export function registerErrorHandling(app: FastifyInstance, guard: EdgeGuard): void {
  app.setErrorHandler((err: FrameworkError, req, reply) => {
    if (err.validation) return sendError(req, reply, new MailmeshError('BAD_REQUEST', err.message));
    if (!(err instanceof MailmeshError) && err.statusCode && err.statusCode < 500) {
      return sendError(req, reply, new MailmeshError(CODE_BY_STATUS[err.statusCode] ?? 'BAD_REQUEST', err.message));
    }
    const e = asMailmeshError(err);
    // A fault ends this request alone: logged, counted (mailmesh_faults_total{face="http"}), 500.
    if (e.kind === 'internal') guard.fault(err, { reqId: req.id, url: req.url.split('?')[0] });
    return sendError(req, reply, e, err);
  });
  app.setNotFoundHandler((req, reply) => sendError(req, reply, new MailmeshError('NOT_FOUND', `${req.method} ${req.url.split('?')[0]}`)));
}
