import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { loadConfig } from '../../../cli/config.js';
import { createLogger, journalLine, stdoutIsJournal } from '../../../cli/log.js';
import { createHttpServer } from '../../../directory/http/http.js';
import { run, tempDir } from '../../helpers.js';
import { get, memoryDirectory } from './helpers.js';

// The HTTP face's request log through the process's own logger (cli/log.ts): nothing per request
// at info, one line per request at debug, probes (/healthz, /metrics) only at trace.

const directory = await memoryDirectory();
await directory.addDomain('demo.mailmesh.test');

/** The logger of `mailmesh serve` at `level`, writing its lines into an array. */
function capture(t: Test, level: string, format = 'json'): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({ write: (chunk: Buffer, _enc, cb) => (lines.push(...chunk.toString().split('\n').filter(Boolean)), cb()) });
  const c = loadConfig({ env: { MAILMESH_LOG__LEVEL: level, MAILMESH_LOG__FORMAT: format }, cwd: tempDir(t) });
  return { lines, logger: createLogger(c, { env: {}, destination }) };
}

async function face(t: Test, level: string): Promise<{ base: string; lines: string[] }> {
  const { lines, logger } = capture(t, level);
  const app = await createHttpServer({ directory, logger: logger.child({ face: 'http' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  lines.length = 0; // fastify's "Server listening" line: once, not per request
  return { base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, lines };
}

/** Requests of every kind: a success, a refused read (404), a probe of each kind. */
async function traffic(base: string): Promise<void> {
  await run('curl', ['-sf', '-o', '/dev/null', `${base}/v1/domains/demo.mailmesh.test`]);
  t.equal((await get(`${base}/v1/domains/nowhere.test`)).status, 404);
  t.equal((await get(`${base}/healthz`)).status, 200);
  t.equal((await get(`${base}/metrics`)).status, 200);
}

const parsed = (lines: string[]) => lines.map((l) => JSON.parse(l) as { level: number; msg: string; url?: string; status?: number; reqId?: string });

t.test('at info, no request is logged', async (t) => {
  const { base, lines } = await face(t, 'info');
  await traffic(base);
  t.same(lines, [], 'not one line for four requests, the 404 included');
});

t.test('at debug, one line per request (with the refusal detail of the 404), and no probe', async (t) => {
  const { base, lines } = await face(t, 'debug');
  await traffic(base);
  const requests = parsed(lines).filter((l) => l.msg === 'request');
  t.same(requests.map((l) => [l.level, l.url, l.status]), [[20, '/v1/domains/demo.mailmesh.test', 200], [20, '/v1/domains/nowhere.test', 404]], 'one debug line each, probes left out');
  const refused = parsed(lines).filter((l) => l.msg === 'request refused');
  t.equal(refused.length, 1, 'the 404 detail, at debug');
  t.equal(refused[0]!.level, 20);
  t.equal(refused[0]!.reqId, requests[1]!.reqId, 'under the request ID of its line');
  t.notOk(lines.some((l) => /incoming request|request completed/.test(l)), "fastify's own two lines are off");
});

t.test('at trace, the probes show too', async (t) => {
  const { base, lines } = await face(t, 'trace');
  await traffic(base);
  const probes = parsed(lines).filter((l) => l.msg === 'request' && ['/healthz', '/metrics'].includes(l.url!));
  t.same(probes.map((l) => l.level), [10, 10], 'both probes, at trace');
});

t.test('log.format journal: each JSON line carries its sd-daemon(3) priority', async (t) => {
  const { lines, logger } = capture(t, 'debug', 'journal');
  logger.error('e');
  logger.warn('w');
  logger.info('i');
  logger.debug('d');
  t.same(lines.map((l) => l.slice(0, 3)), ['<3>', '<4>', '<6>', '<7>']);
  t.same(lines.map((l) => (JSON.parse(l.slice(3)) as { msg: string }).msg), ['e', 'w', 'i', 'd'], 'the rest of each line is the JSON line');
  t.equal(journalLine('not json'), '<6>not json', 'a line without a level is info');
});

t.test('log.format auto: journal only when JOURNAL_STREAM names this very stdout', async (t) => {
  t.notOk(stdoutIsJournal({}), 'no JOURNAL_STREAM');
  t.notOk(stdoutIsJournal({ JOURNAL_STREAM: '1:1' }), 'another stream');
  t.notOk(stdoutIsJournal({ JOURNAL_STREAM: 'garbage' }));
  const { fstatSync } = await import('node:fs');
  const st = fstatSync(1, { bigint: true });
  t.ok(stdoutIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }), 'device and inode of fd 1');
  t.throws(() => loadConfig({ env: { MAILMESH_LOG__FORMAT: 'syslog' }, cwd: tempDir(t) }), { code: 'CONFIG_INVALID' }, 'an unknown format is a config error');
});

t.test('a refused request that asked for a change is logged at info; journal wins over pretty', async (t) => {
  const { base, lines } = await face(t, 'info');
  const r = await get(`${base}/v1/domains`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"not":"signed"}' });
  t.ok(r.status >= 400 && r.status < 500, `refused: ${r.status}`);
  const info = parsed(lines).filter((l) => l.msg === 'request refused');
  t.same(info.map((l) => l.level), [30], 'one info line with the detail');
  t.notOk(parsed(lines).some((l) => l.msg === 'request'), 'and no request line at info');
  const c = loadConfig({ env: { MAILMESH_LOG__FORMAT: 'journal', MAILMESH_LOG__PRETTY: 'true' }, cwd: tempDir(t) });
  const out: string[] = [];
  createLogger(c, { env: {}, destination: new Writable({ write: (chunk: Buffer, _e, cb) => (out.push(chunk.toString()), cb()) }) }).warn('w');
  t.match(out.join(''), /^<4>\{"level":40,/);
});
