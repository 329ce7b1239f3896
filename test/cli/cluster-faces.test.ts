/**
 * `cluster export` carries the exporting node's faces (enabled, host, port; http.publicUrl) and
 * `cluster join` writes them into the new node's mailmesh.yaml and says so: the new node serves
 * on the same ports, with the same public URL, without another setting. Uses the built CLI
 * (`npm run build` first) and the machine's Redis under a random prefix.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { joinCluster, joinReport, openBundle, sealBundle } from '../../cli/cluster.js';
import { freePort, redisPrefix, run, tempDir, TEST_REDIS_URL, throwsCode } from '../helpers.js';
import { cli, startServe } from './helpers.js';

const CREDS = { store: { url: 'redis://127.0.0.1:6379/0', redisPrefix: 'mm:{x}:' }, masterKey: randomBytes(32).toString('base64') };

t.test('a bundle\'s faces: carried as they are, and nothing but face keys, each valid', async (t) => {
  const faces = { http: { enabled: true, host: '0.0.0.0', port: 443, publicUrl: 'https://keys.example.org' }, dns: { enabled: true, host: '::', port: 53 }, ldap: { enabled: false, host: '127.0.0.1', port: 1389 }, smtp: { enabled: true, host: '0.0.0.0', port: 25 } };
  t.same(openBundle(sealBundle({ ...CREDS, faces }, 'p'), 'p').faces, faces);
  const bad: unknown[] = [
    [],
    { imap: { enabled: true, host: 'x', port: 1 } },
    { smtp: { enabled: true, host: '0.0.0.0', port: 25, smarthost: '192.0.2.1:25' } },
    { dns: { enabled: true, host: '0.0.0.0', port: 70000 } },
    { http: { enabled: true, host: '', port: 80 } },
    { http: { enabled: true, host: '0.0.0.0', port: 80, publicUrl: 'ftp://keys.example.org' } },
    { dns: { enabled: true, host: '0.0.0.0', port: 53, publicUrl: 'https://keys.example.org' } },
  ];
  for (const f of bad) throwsCode(t, () => openBundle(sealBundle({ ...CREDS, faces: f as never }, 'p'), 'p'), 'CLUSTER_BUNDLE_INVALID', JSON.stringify(f));
});

t.test('a bundle without faces (an older version): join says the node listens on the defaults', async (t) => {
  const dir = tempDir(t);
  const w = await joinCluster(sealBundle(CREDS, 'p'), 'p', join(dir, 'mailmesh.yaml'), { offline: true });
  const conf = parse(readFileSync(w.config, 'utf8')) as Record<string, unknown>;
  t.same(Object.keys(conf).sort(), ['masterKey', 'store']);
  t.match(joinReport(w), /carries no face settings .* listens on the default hosts and ports; set http, dns, ldap and smtp host\/port \(and http\.publicUrl\)/);
});

t.test('export on node 1, join on node 2: node 2 serves on node 1\'s ports with its public URL', async (t) => {
  const prefix = redisPrefix(t);
  const [httpPort, dnsPort, smtpPort] = [await freePort(), await freePort(), await freePort()];
  const one = tempDir(t);
  const two = tempDir(t);
  const faces = {
    MAILMESH_HTTP__PORT: String(httpPort), MAILMESH_HTTP__PUBLIC_URL: 'https://keys.example.org/', MAILMESH_DNS__PORT: String(dnsPort),
    MAILMESH_SMTP__PORT: String(smtpPort), MAILMESH_LDAP__ENABLED: 'false',
  };
  const env = { MAILMESH_STORE__URL: TEST_REDIS_URL, MAILMESH_STORE__REDIS_PREFIX: prefix, MAILMESH_CLUSTER_PASSPHRASE: 'tr0ub4dor', ...faces };
  const add = await cli(one, ['domain', 'add', 'faces.test'], env);
  t.equal(add.code, 0, add.stderr.toString());
  const exp = await cli(one, ['cluster', 'export', '--out', 'b.json'], env);
  t.equal(exp.code, 0, exp.stderr.toString());

  const joined = await cli(two, ['cluster', 'join', join(one, 'b.json')], { MAILMESH_CLUSTER_PASSPHRASE: 'tr0ub4dor' });
  t.equal(joined.code, 0, joined.stderr.toString());
  const out = joined.stdout.toString();
  t.match(out, `faces as on the exporting node: http 127.0.0.1:${httpPort} (publicUrl https://keys.example.org), dns 127.0.0.1:${dnsPort}, ldap off, smtp 127.0.0.1:${smtpPort}`);
  t.match(out, /not in the bundle, copy from the exporting node if it sets them: policy, federation/);
  const conf = parse(readFileSync(join(two, 'mailmesh.yaml'), 'utf8')) as Record<string, { port?: number; publicUrl?: string; enabled?: boolean }>;
  t.same([conf.http?.port, conf.http?.publicUrl, conf.dns?.port, conf.smtp?.port, conf.ldap?.enabled], [httpPort, 'https://keys.example.org', dnsPort, smtpPort, false]);

  // Node 2 with nothing but the written file (the ports of the file, not 0).
  const served = await startServe(t, two, { MAILMESH_DEMO__DOMAIN: '' }, { configPorts: true });
  t.same([served.addresses.http, served.addresses.dns, served.addresses.smtp, served.addresses.ldap], [`127.0.0.1:${httpPort}`, `127.0.0.1:${dnsPort}`, `127.0.0.1:${smtpPort}`, undefined]);
  const txt = await run('kdig', ['@127.0.0.1', '-p', String(dnsPort), '+short', 'TXT', 'faces.test.dir.mailmesh.test']);
  t.match(txt.stdout.toString(), /dir=https:\/\/keys\.example\.org;/, 'node 2 publishes node 1\'s public URL for node 1\'s domain');
});
