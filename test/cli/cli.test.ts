import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../../cli/exit.js';
import t from 'tap';
import { gpgHome, run, tempDir } from '../helpers.js';
import { cli, MAIN, startServe } from './helpers.js';

// Real processes and key generation: slow on a loaded 2-core machine; a hang still ends here.
t.setTimeout(600_000);

t.test('the built CLI exists (npm test builds it)', async (t) => {
  t.ok(existsSync(MAIN), MAIN);
});

t.test('serve: demo domain on first start, record over HTTP, gpg and openssl take its keys, Ctrl-C stops it', async (t) => {
  const cwd = tempDir(t);
  const s = await startServe(t, cwd);
  t.ok(statSync(join(cwd, 'data', 'mailmesh.db')).isFile(), 'embedded store in ./data');
  t.equal(statSync(join(cwd, 'data', 'master.key')).mode & 0o777, 0o600, 'key file mode 0600');
  t.ok(s.lines.some((l) => l.msg === 'demo domain created'));
  const base = `http://${s.addresses.http}`;
  const health = JSON.parse((await run('curl', ['-sf', `${base}/healthz`])).stdout.toString());
  t.same(health, { status: 'ok', store: 'sqlite', serial: 1 });
  const rec = JSON.parse((await run('curl', ['-sf', `${base}/v1/domains/demo.mailmesh.test`])).stdout.toString());
  t.equal(rec.domain, 'demo.mailmesh.test');
  t.equal(rec.keys.smime.chain.length, 2);

  const { gpg } = gpgHome(t);
  await gpg(['--import'], rec.keys.openpgp.armored);
  t.match((await gpg(['--with-colons', '--list-keys'])).stdout.toString(), `fpr:::::::::${rec.keys.openpgp.fingerprint}:`);
  const dir = tempDir(t);
  writeFileSync(join(dir, 'leaf.pem'), rec.keys.smime.chain[0]);
  writeFileSync(join(dir, 'ca.pem'), rec.keys.smime.chain[1]);
  t.match((await run('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-subject'])).stdout.toString(), 'demo.mailmesh.test');
  t.match((await run('openssl', ['verify', '-purpose', 'smimeencrypt', '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')])).stdout.toString(), ': OK');

  const missing = await run('curl', ['-s', '-w', '\n%{http_code}', `${base}/v1/domains/nobody.example`]);
  const [body, status] = missing.stdout.toString().split('\n');
  t.equal(status, '404');
  t.same(JSON.parse(body!).error.code, 'DOMAIN_NOT_FOUND');

  // The SMTP gateway listens too; with the internal mail server unreachable (QUIET: 127.0.0.1:1) it never says 250.
  t.ok(s.addresses.smtp && s.addresses.dns && s.addresses.ldap, JSON.stringify(s.addresses));
  const [smtpHost, smtpPort] = s.addresses.smtp.split(':');
  const swaks = await run('swaks', ['--server', smtpHost!, '--port', smtpPort!, '--from', 'x@partner.example', '--to', 'bob@demo.mailmesh.test'], { allowFail: true });
  t.match(swaks.stdout.toString(), /<\*\* 451 4\.4\.1/, 'next hop down: 451, the sender keeps the message');
  const metrics = (await run('curl', ['-sf', `${base}/metrics`])).stdout.toString();
  t.match(metrics, /^mailmesh_smtp_recipients_total\{result="deferred"\} 1$/m, '/metrics counts it');

  s.child.kill('SIGINT');
  t.equal(await s.exited, 0, 'Ctrl-C shuts down cleanly');
  t.ok(s.lines.some((l) => l.msg === 'shutting down'));

  const again = await startServe(t, cwd);
  t.notOk(again.lines.some((l) => l.msg === 'demo domain created'), 'the second start reuses the demo domain');
  again.child.kill('SIGTERM');
  t.equal(await again.exited, 0);
});

t.test('domain add/list/show/export/remove; restart keeps keys; a wrong master key changes nothing', async (t) => {
  const cwd = tempDir(t);
  const add = await cli(cwd, ['domain', 'add', 'Example.ORG', '--format', 'pgp-mime']);
  t.equal(add.code, 0, add.stderr);
  const fpr = /openpgp\s+([0-9A-F]{40})/.exec(add.stdout.toString())![1]!;
  const smime = /smime\s+([0-9a-f]{64})/.exec(add.stdout.toString())![1]!;
  t.equal((await cli(cwd, ['domain', 'add', 'example.org'])).code, EXIT.DATAERR, 'adding twice fails');

  const shown = JSON.parse((await cli(cwd, ['domain', 'show', 'example.org', '--json'])).stdout.toString());
  t.same([shown.keys.openpgp.fingerprint, shown.keys.smime.fingerprint, shown.formats], [fpr, smime, ['pgp-mime']], 'restart: same fingerprints');
  t.match((await cli(cwd, ['domain', 'list'])).stdout.toString(), new RegExp(`^example\\.org\\tactive\\t1\\t${fpr}\\t${smime}\\t`, 'm'));

  const der = join(cwd, 'leaf.der');
  t.equal((await cli(cwd, ['domain', 'export', 'example.org', '--what', 'smime-der', '--out', der])).code, 0);
  t.match((await run('openssl', ['x509', '-inform', 'DER', '-in', der, '-noout', '-ext', 'subjectAltName'])).stdout.toString(), 'email:domainkey@example.org');
  t.match((await cli(cwd, ['domain', 'export', 'example.org'])).stdout.toString(), /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);

  const wrong = await cli(cwd, ['domain', 'add', 'second.example'], { MAILMESH_MASTER_KEY: randomBytes(32).toString('base64') });
  t.equal(wrong.code, EXIT.NOPERM);
  t.match(wrong.stderr, /MASTER_KEY_MISMATCH: the master key does not open this store/);
  const list = (await cli(cwd, ['domain', 'list'])).stdout.toString();
  t.notMatch(list, 'second.example', 'nothing was written with the wrong key');
  t.match(list, /^example\.org\tactive\t1\t/m, 'serial unchanged');

  const bad = await cli(cwd, ['domain', 'add', 'not_a_domain']);
  t.equal(bad.code, EXIT.DATAERR);
  t.match(bad.stderr, /DOMAIN_INVALID/);
  t.match((await cli(cwd, ['domain', 'show', 'nobody.example'])).stderr, /DOMAIN_NOT_FOUND/);

  t.equal((await cli(cwd, ['domain', 'remove', 'example.org'])).code, 0);
  t.equal((await cli(cwd, ['domain', 'list'])).stdout.toString(), '');
});

t.test('init and config print', async (t) => {
  const cwd = tempDir(t);
  const init = await cli(cwd, ['init']);
  t.equal(init.code, 0, init.stderr);
  t.ok(existsSync(join(cwd, 'mailmesh.yaml')));
  t.ok(existsSync(join(cwd, 'data', 'master.key')));
  const printed = await cli(cwd, ['config', 'print'], { MAILMESH_MASTER_KEY: randomBytes(32).toString('base64') });
  t.match(printed.stdout.toString(), /masterKey:\n(\s+file: .*\n)?\s+value: "\*{8}"/);
  t.match(printed.stdout.toString(), `source: ${join(cwd, 'mailmesh.yaml')}`);
  const broken = await cli(cwd, ['config', 'print'], { MAILMESH_HTTP__PORT: '-1' });
  t.equal(broken.code, EXIT.CONFIG);
  t.match(broken.stderr, /CONFIG_INVALID: .*http\.port/);
});

t.test('the README documents every command (walked from `--help`)', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const dir = tempDir(t);
  /** The command names under "Commands:" of a help text (without `help`). */
  const commands = async (path: string[]) => {
    const help = (await cli(dir, [...path, '--help'])).stdout.toString();
    return [...help.slice(help.indexOf('Commands:')).matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
  };
  const found: string[] = [];
  for (const top of await commands([])) {
    const subs = await commands([top]);
    for (const path of subs.length ? subs.map((s) => `${top} ${s}`) : [top]) found.push(path);
  }
  t.ok(found.includes('cluster join') && found.includes('serve'), `the walk finds commands (${found.length})`);
  for (const path of found) t.ok(readme.includes('`mailmesh ' + path), `README documents mailmesh ${path}`);
});
