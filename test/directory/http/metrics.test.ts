import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { loadConfig, maskedConfig } from '../../../cli/config.js';
import { packageVersion } from '../../../directory/http/openapi.js';
import { freePort, run, tempDir } from '../../helpers.js';
import { get, isUnauthorized } from './helpers.js';
import { hostPort, parseExposition, scrape, start, total } from './scrape.js';

// `mailmesh serve` in this process with every face on port 0 and a memory store; real clients
// (curl, kdig, ldapsearch, swaks) ask each face, and /metrics is scraped over HTTP and parsed.

const TOKEN = 'scrape-token-0123456789';

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
  t.same(info, { name: 'mailmesh_build_info', labels: { version: packageVersion(), node: process.version }, value: 1 }, 'mailmesh_build_info{version,node} 1');
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
  t.equal(moved('mailmesh_ldap_operations_total', { operation: 'bind' }), 0, 'the anonymous binds (ldapjs answers them itself) are not counted');
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

t.test('a short metrics token is a configuration error; config print masks the token', async (t) => {
  t.throws(() => loadConfig({ env: { MAILMESH_HTTP__METRICS_TOKEN: 'short' }, cwd: tempDir(t) }), { code: 'CONFIG_INVALID' });
  const c = loadConfig({ env: { MAILMESH_HTTP__METRICS_TOKEN: TOKEN }, cwd: tempDir(t) });
  t.equal(c.http.metricsToken, TOKEN);
  t.notMatch(JSON.stringify(maskedConfig(c)), TOKEN);
});

t.test('mailmesh_store_up goes to 0 when the Redis store stops answering, and /metrics still answers', async (t) => {
  // A Redis of this test's own, on a free port, so that it can be stopped.
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  t.teardown(() => void redis.kill('SIGKILL'));
  for (let i = 0; i < 100 && (await run('redis-cli', ['-p', String(port), 'ping'], { allowFail: true })).code !== 0; i++) await delay(50);
  const running = await start(t, { MAILMESH_STORE__URL: `redis://127.0.0.1:${port}/0`, MAILMESH_HTTP__PORT: '0', MAILMESH_DNS__ENABLED: 'false', MAILMESH_LDAP__ENABLED: 'false', MAILMESH_SMTP__ENABLED: 'false' });
  const base = `http://${running.addresses.http}`;
  t.equal(total(await scrape(base), 'mailmesh_store_up', { store: 'redis' }), 1, 'up while Redis answers');
  const exited = new Promise((r) => redis.once('exit', r));
  redis.kill('SIGKILL');
  await exited;
  t.equal(total(await scrape(base), 'mailmesh_store_up', { store: 'redis' }), 0, 'down once it is gone');
});
