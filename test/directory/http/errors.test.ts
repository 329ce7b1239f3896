import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { Directory } from '../../../directory/directory.js';
import { CATALOGUE } from '../../../directory/errors.js';
import { createHttpServer, type HttpOptions } from '../../../directory/http/http.js';
import { RedisStore } from '../../../directory/store/redis.js';
import { startRedis } from '../store/redis-servers.js';
import { get, memoryDirectory, type Got } from './helpers.js';

// The error edge (directory/errors.ts, directory/http/errors.ts): a client gets the code, the
// catalogue's text and a request ID; the detail is in the log line with that ID (`reqId`).

/** The HTTP face on port 0 with a logger whose JSON lines the test reads. */
async function serve(directory: Directory, more: Partial<HttpOptions> = {}) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const app = await createHttpServer({ directory, logger: pino({ level: 'debug' }, sink), ...more });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  return { base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, lines };
}

/** The reply's error body, checked for its shape: code, the catalogue's text, the request ID of the header. */
function refusal(t: Test, r: Got, code: keyof typeof CATALOGUE): string {
  const id = r.headers['x-request-id'];
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a random (v4 UUID) request ID in X-Request-Id');
  t.same(r.json(), { error: { code, message: CATALOGUE[code].message, requestId: id } }, 'the code, the catalogue text and the same request ID, nothing more');
  return id as string;
}

/** The one log line of a request that carries the refusal (its `detail`). */
function logged(lines: Record<string, unknown>[], reqId: string, msg: string) {
  const found = lines.filter((l) => l.reqId === reqId && l.msg === msg);
  return found.length === 1 ? found[0]! : undefined;
}

t.test('a store that fails: 503 with the catalogue text; the client library message only in the log, under the request ID', async (t) => {
  const redis = await startRedis(t);
  const store = await new RedisStore(`redis://127.0.0.1:${redis.port}`, { prefix: `mm:{${randomBytes(4).toString('hex')}}:`, connectTimeoutMs: 500 }).connect();
  t.teardown(() => store.close());
  const directory = await Directory.open(store, randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 365 } });
  const { base, lines } = await serve(directory);
  await redis.stop(); // the port is closed now

  const r = await get(`${base}/v1/domains/demo.test`);
  t.equal(r.status, 503);
  const id = refusal(t, r, 'STORE_UNAVAILABLE');
  t.notMatch(r.text, /redis|ECONNREFUSED|closed|retr|127\.0\.0\.1/i, 'no library message, no address');
  t.notMatch(r.text, `:${redis.port}`, 'no port');
  const line = logged(lines, id, 'request failed');
  t.ok(line, 'one log line with the reply\'s request ID');
  t.equal(line?.code, 'STORE_UNAVAILABLE');
  t.match(line?.detail, /^redis: \S/, 'the detail (the client library message) is in the log');
  t.equal(line?.level, 50, 'as an error');

  const again = await get(`${base}/v1/domains/demo.test`);
  t.not(again.headers['x-request-id'], id, 'every request an ID of its own');
});

t.test('a fault: 500 INTERNAL with the catalogue text; the thrown message only in the log', async (t) => {
  const fail = async () => {
    throw new TypeError('secret internals at /srv/mailmesh/x.js');
  };
  const { base, lines } = await serve(await memoryDirectory(), { federation: { join: fail, leave: fail } });
  const r = await get(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(r.status, 500);
  const id = refusal(t, r, 'INTERNAL');
  t.notMatch(r.text, /secret|srv|TypeError/);
  const line = logged(lines, id, 'request failed');
  t.match(line?.detail, 'secret internals at /srv/mailmesh/x.js');
  t.match((line?.err as { type?: string } | undefined)?.type, 'TypeError', 'the error with its stack');
});

t.test("a client's mistake: 4xx with the catalogue text; the parser's message in the log, as info", async (t) => {
  const { base, lines } = await serve(await memoryDirectory());
  const r = await get(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"domain": tru' });
  t.equal(r.status, 400);
  const id = refusal(t, r, 'BAD_REQUEST');
  t.notMatch(r.text, /JSON|token|position|Unexpected/i, "no JSON parser's message");
  const line = logged(lines, id, 'request refused');
  t.equal(line?.level, 30, 'as info');
  t.ok(typeof line?.detail === 'string' && line.detail.length > 0, 'the detail is in the log');

  // Not found and a malformed URL take the same way; a refused read is logged at debug (docs/observability.md "Logs").
  const missing = await get(`${base}/v1/domains/nowhere.test`);
  t.equal(missing.status, 404);
  const notFound = logged(lines, refusal(t, missing, 'DOMAIN_NOT_FOUND'), 'request refused');
  t.match(notFound?.detail, 'nowhere.test');
  t.equal(notFound?.level, 20, 'a refused GET: at debug');
  const route = await get(`${base}/no/such/route`);
  t.equal(route.status, 404);
  t.match(logged(lines, refusal(t, route, 'NOT_FOUND'), 'request refused')?.detail, '/no/such/route');
});

t.test('a declared body too large for any route: 413 before 100-continue, with a request ID and the detail in the log', async (t) => {
  const { base, lines } = await serve(await memoryDirectory());
  const r = await get(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(64 * 2 ** 20), expect: '100-continue' } });
  t.equal(r.status, 413);
  const id = refusal(t, r, 'BODY_TOO_LARGE');
  t.match(logged(lines, id, 'request refused')?.detail, `${64 * 2 ** 20} bytes declared`);
});
