/**
 * `http.publicUrl` (README "Configuration"): validated at load, and named by a running `serve`
 * wherever the directory URL is handed out: the `dir=` of the DNS face's TXT record (kdig), the
 * CRL distribution point of a new S/MIME leaf (openssl), and the link in a WebMail message that
 * went through the gateway (swaks in, a real next hop out). Without it, serve warns when the
 * HTTP face's address is a loopback one and WebMail hands it out.
 */
import { join } from 'node:path';
import t from 'tap';
import { publicUrlWarning } from '../../cli/app.js';
import { loadConfig } from '../../cli/config.js';
import { readMessage } from '../../gateway/webmail/message.js';
import { startSink } from '../gateway/smtp/helpers.js';
import { startZone } from '../federation/helpers.js';
import { run, tempDir, throwsCode } from '../helpers.js';
import { startServe } from './helpers.js';

const load = (publicUrl: string) => loadConfig({ env: { MAILMESH_HTTP__PUBLIC_URL: publicUrl }, cwd: '/' }).http.publicUrl;

t.test('http.publicUrl: an absolute http(s) URL without query, fragment or credentials; a trailing slash is trimmed', async (t) => {
  t.equal(load('https://keys.example.org/'), 'https://keys.example.org');
  t.equal(load('https://Keys.Example.org:8443/mailmesh//'), 'https://keys.example.org:8443/mailmesh', 'a path prefix, host in lower case');
  t.equal(load('http://[2001:db8::1]:8080'), 'http://[2001:db8::1]:8080');
  t.equal(loadConfig({ env: {}, cwd: '/' }).http.publicUrl, undefined, 'unset by default');
  for (const bad of ['keys.example.org', '/relative', 'ftp://keys.example.org', 'https://keys.example.org/?x=1', 'https://keys.example.org/#top', 'https://u:p@keys.example.org', '']) {
    throwsCode(t, () => load(bad), 'CONFIG_INVALID', JSON.stringify(bad));
  }
  try {
    load('ftp://keys.example.org');
  } catch (e) {
    t.match((e as Error).message, /http\.publicUrl: expected an http: or https: URL, like https:\/\/keys\.example\.org/, 'the message names the key and the form');
  }
});

t.test('serve: TXT dir=, a new leaf\'s CRL URL and a WebMail link name http.publicUrl', async (t) => {
  const cwd = tempDir(t);
  const zone = await startZone(t); // answers NXDOMAIN for nokey.test: no key anywhere, the fallback decides
  const hop = await startSink(t);
  const env = {
    MAILMESH_MASTER_KEY: Buffer.alloc(32, 9).toString('base64'),
    MAILMESH_HTTP__PUBLIC_URL: 'https://keys.example.org/',
    MAILMESH_WEBMAIL__ENABLED: 'true',
    MAILMESH_POLICY__DEFAULT__FALLBACK: 'webmail',
    MAILMESH_SMTP__SMARTHOST: `127.0.0.1:${hop.port}`,
    MAILMESH_FEDERATION__RESOLVERS: `127.0.0.1:${zone.port}`,
    MAILMESH_FEDERATION__WELL_KNOWN_BASE: 'http://127.0.0.1:1/{domain}',
  };
  const { addresses, lines, child, exited } = await startServe(t, cwd, env);
  t.notOk(lines.find((l) => l.face === 'http' && l.level === 40), 'no warning: the public URL is set');

  const [dnsHost, dnsPort] = addresses.dns.split(/:(?=\d+$)/);
  const txt = await run('kdig', [`@${dnsHost}`, '-p', dnsPort!, '+short', 'TXT', 'demo.mailmesh.test.dir.mailmesh.test']);
  t.match(txt.stdout.toString(), /dir=https:\/\/keys\.example\.org;/, 'the TXT record of the DNS face');

  const rec = (await (await fetch(`http://${addresses.http}/v1/domains/demo.mailmesh.test`)).json()) as { keys: { smime: { chain: string[] } } };
  const dp = await run('openssl', ['x509', '-noout', '-ext', 'crlDistributionPoints'], { input: rec.keys.smime.chain[0] });
  t.match(dp.stdout.toString(), /URI:https:\/\/keys\.example\.org\/v1\/domains\/demo\.mailmesh\.test\/crl\b/, 'the leaf made at start names the public CRL URL');

  const [smtpHost, smtpPort] = addresses.smtp.split(/:(?=\d+$)/);
  const sent = await run('swaks', ['--server', smtpHost!, '--port', smtpPort!, '--from', 'a@demo.mailmesh.test', '--to', 'x@nokey.test', '--header', 'Subject: for WebMail', '--body', 'hello'], { allowFail: true });
  t.equal(sent.code, 0, sent.stdout.toString());
  await hop.received(1);
  const mail = await readMessage(hop.messages[0]!.data);
  const html = mail.attachments.map((a) => a.data.toString()).join('\n');
  t.match(html, /action="https:\/\/keys\.example\.org\/webmail\/open"/, 'the WebMail attachment posts to the public URL');
  t.notMatch(html, new RegExp(addresses.http.replace(/[.[\]]/g, '\\$&')), 'not to the bound address');
  child.kill('SIGTERM');
  await exited;

  // Without it: the bound address, and a warning, since WebMail hands the URL out.
  const { MAILMESH_HTTP__PUBLIC_URL: _set, ...unset } = env;
  const plain = await startServe(t, cwd, unset);
  t.match(plain.lines.find((l) => l.face === 'http' && l.level === 40), { msg: /http\.publicUrl is unset and http\.host 127\.0\.0\.1 is not an address others can reach/ });
  const [h2, p2] = plain.addresses.dns.split(/:(?=\d+$)/);
  const txt2 = await run('kdig', [`@${h2}`, '-p', p2!, '+short', 'TXT', 'demo.mailmesh.test.dir.mailmesh.test']);
  t.match(txt2.stdout.toString(), `dir=http://${plain.addresses.http};`, 'the HTTP face\'s bound address');
});

t.test('no warning when nothing hands the URL out (no directories, mirrors, authoritativeFor or WebMail)', async (t) => {
  const cwd = tempDir(t);
  const { lines } = await startServe(t, cwd, { MAILMESH_MASTER_KEY: Buffer.alloc(32, 9).toString('base64'), MAILMESH_DATA_DIR: join(cwd, 'd') });
  t.notOk(lines.find((l) => l.face === 'http' && l.level === 40));
});

t.test('publicUrlWarning: a wildcard or loopback face whose URL is handed out, and no public URL', async (t) => {
  const warn = (env: Record<string, string>) => publicUrlWarning(loadConfig({ env, cwd: '/' }));
  const dirs = { MAILMESH_FEDERATION__DIRECTORIES: JSON.stringify([{ url: 'https://dir.example.org' }]) };
  for (const host of ['0.0.0.0', '::', '127.0.0.1', '127.9.9.9', '::1', 'localhost']) t.match(warn({ ...dirs, MAILMESH_HTTP__HOST: host }), `http.host ${host} is not an address`, host);
  t.ok(warn({ MAILMESH_FEDERATION__MIRROR: 'https://dir.example.org' }), 'mirrors');
  t.ok(warn({ MAILMESH_DNS__AUTHORITATIVE_FOR: 'example.org' }), 'member domains in the DNS face');
  t.equal(warn({ ...dirs, MAILMESH_HTTP__HOST: '192.0.2.10' }), undefined, 'an address others can reach');
  t.equal(warn({ ...dirs, MAILMESH_HTTP__HOST: '0.0.0.0', MAILMESH_HTTP__PUBLIC_URL: 'https://keys.example.org' }), undefined, 'a public URL');
  t.equal(warn({ ...dirs, MAILMESH_HTTP__ENABLED: 'false' }), undefined, 'no HTTP face');
  t.equal(warn({ MAILMESH_DNS__AUTHORITATIVE_FOR: 'example.org', MAILMESH_DNS__ENABLED: 'false' }), undefined, 'nothing handed out');
});
