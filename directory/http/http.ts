import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Directory } from '../directory.js';
import { asMailmeshError, MailmeshError, type ErrorKind } from '../errors.js';
import { loadOpenApi, registerOperations } from './openapi.js';

/** The edge mapping from error kinds to HTTP status codes (RFC 9110 §15). */
const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
  forbidden: 403,
  unavailable: 503,
  internal: 500,
};

export function httpStatus(e: MailmeshError): number {
  return e.code === 'RATE_LIMITED' ? 429 : STATUS[e.kind];
}

export function sendError(reply: FastifyReply, e: MailmeshError): FastifyReply {
  return reply.code(httpStatus(e)).type('application/json').send({ error: { code: e.code, message: e.publicMessage } });
}

export interface HttpOptions {
  directory: Directory;
  logger: FastifyBaseLogger;
}

/** The directory's HTTP face: routes from openapi.yaml, JSON errors with stable codes. */
export async function createHttpServer(opts: HttpOptions): Promise<FastifyInstance> {
  const { directory } = opts;
  const app = Fastify({ loggerInstance: opts.logger, bodyLimit: 256 * 1024 });

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, req, reply) => {
    if (err.validation) return sendError(reply, new MailmeshError('BAD_REQUEST', err.message));
    const e = asMailmeshError(err);
    if (e.kind === 'internal' || e.kind === 'unavailable') req.log.error({ err }, 'request failed');
    if (e.code === 'INTERNAL' && err.statusCode && err.statusCode < 500) {
      return sendError(reply, new MailmeshError(err.statusCode === 404 ? 'NOT_FOUND' : 'BAD_REQUEST', err.message));
    }
    return sendError(reply, e);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new MailmeshError('NOT_FOUND', `${req.method} ${req.url.split('?')[0]}`)));

  registerOperations(app, loadOpenApi(), {
    async getHealth(_req, reply) {
      try {
        await directory.store.ping();
        return { status: 'ok', store: directory.store.kind, serial: await directory.store.serial() };
      } catch {
        return reply.code(503).send({ status: 'unavailable', store: directory.store.kind });
      }
    },
    async getDomain(req: FastifyRequest) {
      const { domain } = req.params as { domain: string };
      return directory.getRecord(domain);
    },
  });
  return app;
}
