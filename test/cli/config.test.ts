import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { configKeys, loadConfig, maskedConfig } from '../../cli/config.js';
import { tempDir, throwsCode } from '../helpers.js';

t.test('defaults need no file and no environment', async (t) => {
  const c = loadConfig({ env: {}, cwd: '/srv/mm' });
  t.equal(c.source, null);
  t.equal(c.store.url, 'sqlite:/srv/mm/data/mailmesh.db');
  t.equal(c.masterKey.file, '/srv/mm/data/master.key');
  t.same([c.http.host, c.http.port], ['127.0.0.1', 8080]);
  t.equal(c.demo.domain, 'demo.mailmesh.test');
});

t.test('the file, then the environment', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'mailmesh.yaml'), 'dataDir: /var/lib/mm\nhttp:\n  port: 9000\ndns:\n  authoritativeFor: [a.example]\n');
  const c = loadConfig({ env: { MAILMESH_HTTP__HOST: '0.0.0.0', MAILMESH_DNS__NAMESERVERS: 'ns1.x.example, ns2.x.example', MAILMESH_HTTP__TLS__SELF_SIGNED: 'true' }, cwd: dir });
  t.equal(c.source, join(dir, 'mailmesh.yaml'));
  t.same([c.http.host, c.http.port, c.http.tls.selfSigned], ['0.0.0.0', 9000, true]);
  t.same(c.dns.nameservers, ['ns1.x.example', 'ns2.x.example']);
  t.same(c.dns.authoritativeFor, ['a.example']);
  t.equal(c.store.url, 'sqlite:/var/lib/mm/mailmesh.db');
  const other = join(dir, 'other.yaml');
  writeFileSync(other, 'http: { port: 7000 }\n');
  t.equal(loadConfig({ file: 'other.yaml', env: {}, cwd: dir }).http.port, 7000, '--config');
  t.equal(loadConfig({ env: { MAILMESH_CONFIG: other }, cwd: '/' }).http.port, 7000, 'MAILMESH_CONFIG');
});

t.test('errors name the key and the problem', async (t) => {
  const dir = tempDir(t);
  const bad = (yaml: string, env: Record<string, string> = {}) => {
    writeFileSync(join(dir, 'mailmesh.yaml'), yaml);
    try {
      loadConfig({ env, cwd: dir });
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };
  t.match(bad('http:\n  port: 99999\n'), /http\.port: Too big/);
  t.match(bad('http:\n  prot: 1\n'), /http: Unrecognized key: "prot"/);
  t.match(bad('', { MAILMESH_HTTP__PORT: 'eighty' }), /http\.port: .*expected number/);
  t.match(bad('', { MAILMESH_HTTP__PROT: '1' }), /MAILMESH_HTTP__PROT: no such setting/);
  t.match(bad('store:\n  url: mysql://x\n'), /store\.url: use sqlite/);
  t.match(bad('keys: { openpgp: dsa }\n'), /keys\.openpgp/);
  t.match(bad('[1, 2'), /mailmesh\.yaml/);
  t.match(bad('- a\n- b\n'), /not a mapping/);
  throwsCode(t, () => loadConfig({ file: 'missing.yaml', env: {}, cwd: dir }), 'CONFIG_INVALID');
});

t.test('secrets are masked in print', async (t) => {
  const c = loadConfig({ env: { MAILMESH_MASTER_KEY: 'c2VjcmV0', MAILMESH_STORE__URL: 'redis://user:pw@redis.example:6379/2' }, cwd: '/' });
  t.equal(c.masterKey.value, 'c2VjcmV0');
  const printed = JSON.stringify(maskedConfig(c));
  t.notMatch(printed, 'c2VjcmV0');
  t.notMatch(printed, 'pw@');
  t.match(printed, 'redis://********@redis.example:6379/2');
});

t.test('every key has an environment variable, and the README documents every key', async (t) => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const k of configKeys()) {
    t.match(k.env, /^MAILMESH_[A-Z0-9_]+$/);
    t.ok(readme.includes('`' + k.path + '`'), `README documents ${k.path}`);
  }
});
