import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pino } from 'pino';
import type { Test } from 'tap';
import { Directory } from '../../../directory/directory.js';
import { createHttpServer, type HttpConfig, type HttpOptions } from '../../../directory/http/http.js';
import { CATALOGUE } from '../../../directory/errors.js';

export { memoryDirectory } from '../../helpers.js';

/** The HTTP face on 127.0.0.1, port 0, closed when the test ends. */
export async function startHttp(t: Test, directory: Directory, config?: HttpConfig, more: Partial<HttpOptions> = {}): Promise<{ base: string; port: number }> {
  const app = await createHttpServer({ directory, logger: pino({ level: 'silent' }), config, ...more });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const { port } = app.server.address() as { port: number };
  return { base: `${config?.tls ? 'https' : 'http'}://127.0.0.1:${port}`, port };
}

export interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json: () => unknown;
}

/** One HTTP(S) request with node's client (self-signed certificates accepted); the body is collected. */
export function get(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Got> {
  const u = new URL(url);
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(u, { method: opts.method ?? 'GET', headers: opts.headers, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        resolve({ status: res.statusCode!, headers: res.headers, body, text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * A bearer-token route's answer to a missing or wrong token, the same on every such route:
 * 401 UNAUTHORIZED, RFC 6750 §3 `WWW-Authenticate: Bearer`, the JSON error with the catalogue's
 * text and the request ID that the X-Request-Id header carries.
 */
export function isUnauthorized(t: Test, r: Got, what: string): void {
  t.equal(r.status, 401, what);
  t.equal(r.headers['www-authenticate'], 'Bearer realm="mailmesh"', `${what}: the bearer challenge`);
  const id = r.headers['x-request-id'];
  t.match(id, /^[0-9a-f-]{36}$/, `${what}: a request ID`);
  t.same(r.json(), { error: { code: 'UNAUTHORIZED', message: CATALOGUE.UNAUTHORIZED.message, requestId: id } }, `${what}: code, catalogue text, request ID`);
}
