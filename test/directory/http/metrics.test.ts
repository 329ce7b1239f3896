import { pino } from 'pino';
import t, { type Test } from 'tap';
import { serve, type Running } from '../../../cli/app.js';
import { loadConfig } from '../../../cli/config.js';
import { run, tempDir } from '../../helpers.js';
import { get, isUnauthorized } from './helpers.js';

// `mailmesh serve` in this process with every face on port 0 and a memory store; real clients
// (curl, kdig, ldapsearch, swaks) ask each face, and /metrics is scraped over HTTP and parsed.

const TOKEN = 'scrape-token-0123456789';

async function start(t: Test, env: Record<string, string> = {}): Promise<Running> {
  const faces = Object.fromEntries(['HTTP', 'DNS', 'LDAP', 'SMTP'].map((f) => [`MAILMESH_${f}__PORT`, '0']));
  const c = loadConfig({ env: { MAILMESH_STORE__URL: 'memory:', ...faces, ...env }, cwd: tempDir(t) });
  const running = await serve(c, pino({ level: 'silent' }));
  t.teardown(() => running.close());
  return running;
}

const hostPort = (a: string) => {
  const [host, port] = a.split(/:(?=\d+$)/);
  return { host: host!, port: port! };
};

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The text exposition format 0.0.4, read strictly: every line is a HELP, a TYPE or a sample of
 * the family announced before it; label values quoted with \\, \" and \n escapes only.
 */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(`^(${NAME})(?:\\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? (-?(?:[0-9.e+-]+|Inf|NaN))(?: -?\\d+)?$`);
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(meta[3]!)) throw new Error(`bad TYPE line: ${line}`);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = sampleRe.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const family = [...types.keys()].find((f) => m[1] === f || /_(bucket|sum|count|total|created)$/.test(m[1]!) && m[1]!.startsWith(f));
    if (!family) throw new Error(`sample before its TYPE: ${line}`);
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape(base: string, headers: Record<string, string> = {}): Promise<Sample[]> {
  const r = await get(`${base}/metrics`, { headers });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseExposition(r.text).samples;
}

/** Sum of the samples of `name` whose labels include `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

t.test('one scrape parses, in our reading and promtool\'s, and has the runtime, build and store families', async (t) => {
  const running = await start(t);
  const base = `http://${running.addresses.http}`;
  const r = await get(`${base}/metrics`);
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  const { samples, types } = parseExposition(r.text);
  // promtool reads the exposition format itself (it exits 0, or 3 for lint findings only; 1 when it cannot parse).
  const check = await run('promtool', ['check', 'metrics'], { input: r.text, allowFail: true });
  t.not(check.code, 1, `promtool parses it: ${check.stderr}`);
  const info = samples.find((s) => s.name === 'mailmesh_build_info');
  t.same(info, { name: 'mailmesh_build_info', labels: { version: '0.1.0', node: process.version }, value: 1 }, 'mailmesh_build_info{version,node} 1');
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(samples.some((s) => s.name === name), `${name} (standard name)`);
  }
  t.equal(types.get('mailmesh_store_up'), 'gauge');
  t.equal(total(samples, 'mailmesh_store_up', { store: 'memory' }), 1, 'the store answers: mailmesh_store_up 1');
  t.ok(samples.some((s) => s.name === 'mailmesh_key_not_after_timestamp_seconds' && s.labels.kind === 'openpgp' && s.labels.domain), 'key expiry per domain and kind');
  t.ok(samples.some((s) => s.name === 'mailmesh_key_not_after_timestamp_seconds' && s.labels.kind === 'smime'), 'and the S/MIME leaf');
});

t.test('the per-face counters move after real DNS, LDAP, HTTP and SMTP requests', async (t) => {
  const running = await start(t);
  const base = `http://${running.addresses.http}`;
  const before = await scrape(base);

  const curl = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${base}/v1/domains/nowhere.test`]);
  t.equal(curl.stdout.toString(), '404');
  await run('curl', ['-s', '-o', '/dev/null', `${base}/v1/domains`]);
  const dns = hostPort(running.addresses.dns!);
  await run('kdig', [`@${dns.host}`, '-p', dns.port, '+time=5', '+retry=0', 'dir.mailmesh.test', 'SOA']);
  await run('kdig', [`@${dns.host}`, '-p', dns.port, '+time=5', '+retry=0', '+tcp', 'nothing.here.dir.mailmesh.test', 'TXT']);
  const ldap = hostPort(running.addresses.ldap!);
  await run('ldapsearch', ['-x', '-H', `ldap://${ldap.host}:${ldap.port}`, '-b', 'dc=mailmesh', '-s', 'base', '(objectClass=*)']);
  await run('ldapsearch', ['-x', '-H', `ldap://${ldap.host}:${ldap.port}`, '-b', 'dc=nowhere', '(objectClass=*)'], { allowFail: true });
  const smtp = hostPort(running.addresses.smtp!);
  await run('swaks', ['--server', smtp.host, '--port', smtp.port, '--from', 'a@outside.example', '--to', 'b@elsewhere.example', '--quit-after', 'RCPT'], { allowFail: true });

  const after = await scrape(base);
  const moved = (name: string, labels: Record<string, string>) => total(after, name, labels) - total(before, name, labels);
  t.equal(moved('mailmesh_http_requests_total', { method: 'GET', route: '/v1/domains/:domain', status: '4xx' }), 1, 'HTTP: by route pattern and status class');
  t.equal(moved('mailmesh_http_requests_total', { method: 'GET', route: '/v1/domains', status: '2xx' }), 1);
  t.equal(moved('mailmesh_http_requests_total', { route: '/metrics', status: '2xx' }), 1, 'the first scrape counted');
  t.equal(moved('mailmesh_dns_queries_total', { transport: 'udp', qtype: 'SOA', rcode: 'NOERROR' }), 1, 'DNS: by transport, qtype and rcode');
  t.equal(moved('mailmesh_dns_queries_total', { transport: 'tcp', qtype: 'TXT', rcode: 'NXDOMAIN' }), 1);
  t.equal(moved('mailmesh_ldap_operations_total', { operation: 'search', result: 'success' }), 1, 'LDAP: by operation and result');
  t.equal(moved('mailmesh_ldap_operations_total', { operation: 'search', result: 'noSuchObject' }), 1);
  t.equal(moved('mailmesh_smtp_replies_total', { stage: 'mail', class: '2xx' }), 1, 'SMTP: MAIL accepted');
  t.equal(moved('mailmesh_smtp_replies_total', { stage: 'rcpt' }), 1, 'SMTP: the RCPT answer counted, whatever its class');
  t.equal(moved('mailmesh_smtp_connections_total', {}), 1);
});

t.test('http.metricsToken: /metrics needs the bearer token; other routes do not', async (t) => {
  const running = await start(t, { MAILMESH_HTTP__METRICS_TOKEN: TOKEN });
  const base = `http://${running.addresses.http}`;
  isUnauthorized(t, await get(`${base}/metrics`), 'no token');
  isUnauthorized(t, await get(`${base}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } }), 'a wrong token');
  const ok = await run('curl', ['-sf', '-H', `Authorization: Bearer ${TOKEN}`, `${base}/metrics`]);
  t.match(ok.stdout.toString(), /^mailmesh_build_info\{/m, 'curl with the token gets the metrics');
  t.equal((await get(`${base}/healthz`)).status, 200, '/healthz stays open');
  const samples = await scrape(base, { authorization: `Bearer ${TOKEN}` });
  t.equal(total(samples, 'mailmesh_http_requests_total', { route: '/metrics', status: '4xx' }), 2, 'the refused scrapes are counted as 4xx');
});

t.test('a short metrics token is a configuration error', async (t) => {
  t.throws(() => loadConfig({ env: { MAILMESH_HTTP__METRICS_TOKEN: 'short' }, cwd: tempDir(t) }), { code: 'CONFIG_INVALID' });
});
