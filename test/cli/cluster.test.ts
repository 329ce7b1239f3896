import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EXIT } from '../../cli/exit.js';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { joinCluster, openBundle, sealBundle } from '../../cli/cluster.js';
import { Directory } from '../../directory/directory.js';
import { loadMasterKey } from '../../directory/seal.js';
import { RedisStore } from '../../directory/store/redis.js';
import { openMessage, sealMessage, WebmailKeys } from '../../gateway/webmail/crypto.js';
import { redisPrefix, rejectsCode, run, seeded, tempDir, TEST_REDIS_URL, throwsCode } from '../helpers.js';

// Uses the built CLI (`npm run build` first) and the machine's Redis (MAILMESH_TEST_REDIS_URL) under a random prefix.

const MAIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;

function cli(cwd: string, args: string[], env: Record<string, string> = {}) {
  return run('node', [MAIN, ...args], { cwd, env: { MAILMESH_LOG__PRETTY: 'false', ...env }, allowFail: true });
}

/** Starts `mailmesh serve` (ports 0, no demo domain); resolves with its HTTP address once it logs that it serves. */
async function serve(t: Test, cwd: string): Promise<string> {
  const env = { ...process.env, MAILMESH_LOG__PRETTY: 'false', MAILMESH_HTTP__PORT: '0', MAILMESH_DNS__PORT: '0', MAILMESH_LDAP__PORT: '0', MAILMESH_SMTP__PORT: '0', MAILMESH_DEMO__DOMAIN: '' };
  const child = spawn('node', [MAIN, 'serve'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.includes('mailmesh is serving')) return;
      resolve((JSON.parse(line) as { addresses: { http: string } }).addresses.http);
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
}

const CREDS = { store: { url: 'redis://:pw@127.0.0.1:6379/0', redisPrefix: 'mm:{x}:' }, masterKey: randomBytes(32).toString('base64') };

t.test('a bundle opens with its passphrase only; nothing else opens', async (t) => {
  const b = sealBundle(CREDS, 'correct horse');
  t.same(openBundle(b, 'correct horse'), CREDS);
  throwsCode(t, () => openBundle(b, 'wrong horse'), 'CLUSTER_BUNDLE_DECRYPT');
  t.not(sealBundle(CREDS, 'correct horse'), b, 'fresh salt and IV each time');
  t.notMatch(b, CREDS.masterKey);
  t.notMatch(b, 'pw@');
  throwsCode(t, () => sealBundle(CREDS, ''), 'CONFIG_INVALID');
  for (const bad of ['', 'null', '[]', '{}', '{"mailmeshCluster":2}', JSON.stringify({ ...JSON.parse(b), kdf: { ...JSON.parse(b).kdf, N: 2 ** 30 } })]) {
    throwsCode(t, () => openBundle(bad, 'correct horse'), 'CLUSTER_BUNDLE_INVALID', bad.slice(0, 40));
  }
});

t.test('fuzz: any altered character of a bundle is refused with a bundle error code', async (t) => {
  const b = sealBundle(CREDS, 'pass');
  const rand = seeded(7);
  for (let i = 0; i < 40; i++) {
    const at = Math.floor(rand() * b.length);
    const ch = String.fromCharCode(32 + Math.floor(rand() * 95));
    const altered = b.slice(0, at) + ch + b.slice(at + 1);
    if (altered === b) continue;
    try {
      openBundle(altered, 'pass');
      // Only whitespace between JSON tokens may change without changing the bundle.
      t.same(JSON.parse(altered), JSON.parse(b), `accepted only if unchanged (at ${at})`);
    } catch (e) {
      t.match((e as { code?: string }).code, /^CLUSTER_BUNDLE_(INVALID|DECRYPT)$/, `at ${at}`);
    }
  }
});

t.test('export on node 1, join on node 2: node 2 sees node 1\'s domain and opens its private keys', async (t) => {
  const prefix = redisPrefix(t);
  const env = { MAILMESH_STORE__URL: TEST_REDIS_URL, MAILMESH_STORE__REDIS_PREFIX: prefix };
  const one = tempDir(t);
  const two = tempDir(t);
  const add = await cli(one, ['domain', 'add', 'cluster.test'], env);
  t.equal(add.code, 0, add.stderr);

  const noPass = await cli(one, ['cluster', 'export', '--out', 'b.json'], env);
  t.equal(noPass.code, EXIT.CONFIG);
  t.match(noPass.stderr, 'CONFIG_INVALID');
  const exp = await cli(one, ['cluster', 'export', '--out', 'b.json'], { ...env, MAILMESH_CLUSTER_PASSPHRASE: 'tr0ub4dor' });
  t.equal(exp.code, 0, exp.stderr);
  const bundle = join(one, 'b.json');
  t.equal(statSync(bundle).mode & 0o777, 0o600);

  // A wrong passphrase: a clear code, nothing written.
  writeFileSync(join(two, 'wrong'), 'tr0ub4dor!\n');
  const wrong = await cli(two, ['cluster', 'join', bundle, '--passphrase-file', 'wrong']);
  t.equal(wrong.code, EXIT.DATAERR);
  t.match(wrong.stderr, /CLUSTER_BUNDLE_DECRYPT/);
  t.same(readdirSync(two), ['wrong'], 'nothing written');
  // An altered bundle: refused.
  const b = JSON.parse(readFileSync(bundle, 'utf8')) as { data: string };
  const data = Buffer.from(b.data, 'base64');
  data[0] ^= 1;
  writeFileSync(join(two, 'tampered.json'), JSON.stringify({ ...b, data: data.toString('base64') }));
  const tampered = await cli(two, ['cluster', 'join', 'tampered.json'], { MAILMESH_CLUSTER_PASSPHRASE: 'tr0ub4dor' });
  t.equal(tampered.code, EXIT.DATAERR);
  t.match(tampered.stderr, /CLUSTER_BUNDLE_DECRYPT/);
  t.notOk(existsSync(join(two, 'mailmesh.yaml')));

  writeFileSync(join(two, 'pass'), 'tr0ub4dor\n');
  const join2 = await cli(two, ['cluster', 'join', bundle, '--passphrase-file', 'pass', '--config-out', 'mailmesh.yaml']);
  t.equal(join2.code, 0, join2.stderr);
  const conf = parse(readFileSync(join(two, 'mailmesh.yaml'), 'utf8')) as { store: { url: string; redisPrefix: string }; masterKey: { file: string } };
  t.same(conf.store, { url: TEST_REDIS_URL, redisPrefix: prefix });
  t.equal(statSync(join(two, 'mailmesh.yaml')).mode & 0o777, 0o600);
  t.equal(statSync(conf.masterKey.file).mode & 0o777, 0o600);
  const again = await cli(two, ['cluster', 'join', bundle, '--passphrase-file', 'pass']);
  t.match(again.stderr, /CONFIG_INVALID.*exists already/, 'never overwrites');

  // Node 2 (its own directory, no environment): the domain, and its private keys open.
  const show = await cli(two, ['domain', 'show', 'cluster.test']);
  t.equal(show.code, 0, show.stderr);
  const first = await cli(one, ['domain', 'show', 'cluster.test'], env);
  t.equal(show.stdout.toString(), first.stdout.toString(), 'the same record on both nodes');
  const store = await new RedisStore(conf.store.url, { prefix: conf.store.redisPrefix }).connect();
  t.teardown(() => store.close());
  const d = await Directory.open(store, loadMasterKey({ file: conf.masterKey.file, create: false }), { keys: { openpgp: 'curve25519', validDays: 365 } });
  t.match((await d.getSecrets('cluster.test')).openpgp?.armored, /BEGIN PGP PRIVATE KEY BLOCK/);
  // `mailmesh serve` on node 2 serves node 1's domain over HTTP.
  const http = await serve(t, two);
  const rec = JSON.parse((await run('curl', ['-sf', `http://${http}/v1/domains/cluster.test`])).stdout.toString()) as { domain: string; keys: { openpgp?: unknown } };
  t.equal(rec.domain, 'cluster.test');
  t.ok(rec.keys.openpgp);
  // Another master key does not open this store.
  await rejectsCode(t, Directory.open(store, randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 365 } }), 'MASTER_KEY_MISMATCH');
});

t.test('the bundle carries the WebMail keys: a rebuilt store gets them back, mail sent before opens again', async (t) => {
  const prefix = redisPrefix(t);
  const env = { MAILMESH_STORE__URL: TEST_REDIS_URL, MAILMESH_STORE__REDIS_PREFIX: prefix, MAILMESH_CLUSTER_PASSPHRASE: 'tr0ub4dor' };
  const store = await new RedisStore(TEST_REDIS_URL, { prefix }).connect();
  t.teardown(() => store.close());
  const one = tempDir(t);
  t.equal((await cli(one, ['domain', 'add', 'wm.test'], env)).code, 0);
  // Node 1 serves WebMail: two key versions (one rotation), and a message sealed under the current one.
  const masterKey = loadMasterKey({ file: join(one, 'data', 'master.key'), create: false });
  const keys = await WebmailKeys.open(store, masterKey);
  await keys.rotate();
  const MSG = Buffer.from('Subject: before the loss\r\n\r\nstill readable\r\n');
  const sealed = await sealMessage(keys, MSG, { recipient: 'carol@outside.test', messageId: '<m1@wm.test>', expires: Math.floor(Date.now() / 1000) + 3600 });
  t.equal((await cli(one, ['cluster', 'export', '--out', 'b.json'], env)).code, 0);
  const bundle = readFileSync(join(one, 'b.json'), 'utf8');
  t.same(openBundle(bundle, 'tr0ub4dor').webmailKeys?.map((k) => k.version), [1, 2], 'both versions in the bundle');

  const two = tempDir(t);
  const joined = await cli(two, ['cluster', 'join', join(one, 'b.json')], { MAILMESH_CLUSTER_PASSPHRASE: 'tr0ub4dor' });
  t.equal(joined.code, 0, joined.stderr);
  t.match(joined.stdout.toString(), /the store answers and the master key opens it\n/, 'nothing to put back');

  // The Redis loses everything; a node joins with the bundle: the WebMail keys are back.
  await store.destroy();
  const three = tempDir(t);
  const back = await cli(three, ['cluster', 'join', join(one, 'b.json')], { MAILMESH_CLUSTER_PASSPHRASE: 'tr0ub4dor' });
  t.equal(back.code, 0, back.stderr);
  t.match(back.stdout.toString(), 'WebMail key versions put back: 1, 2');
  t.same(await openMessage(await WebmailKeys.open(store, masterKey), sealed, new Date()), MSG, 'the message sealed before the loss opens');

  // Another cluster's bundle with the same store settings: refused, nothing written.
  const other = sealBundle({ store: { url: TEST_REDIS_URL, redisPrefix: prefix }, masterKey: masterKey.toString('base64'), webmailKeys: [{ version: 1, key: randomBytes(32).toString('base64') }] }, 'pass');
  const four = tempDir(t);
  await rejectsCode(t, joinCluster(other, 'pass', join(four, 'mailmesh.yaml')), 'CLUSTER_BUNDLE_MISMATCH');
  const wrongKey = sealBundle({ store: { url: TEST_REDIS_URL, redisPrefix: prefix }, masterKey: randomBytes(32).toString('base64') }, 'pass');
  await rejectsCode(t, joinCluster(wrongKey, 'pass', join(four, 'mailmesh.yaml')), 'MASTER_KEY_MISMATCH');
  t.same(readdirSync(four), [], 'nothing written');
});

t.test('join checks the store unless --offline', async (t) => {
  const unreachable = sealBundle({ store: { url: 'redis://127.0.0.1:1/0', redisPrefix: 'mm:{x}:' }, masterKey: randomBytes(32).toString('base64') }, 'pass');
  const dir = tempDir(t);
  writeFileSync(join(dir, 'b.json'), unreachable);
  const down = await cli(dir, ['cluster', 'join', 'b.json'], { MAILMESH_CLUSTER_PASSPHRASE: 'pass' });
  t.equal(down.code, EXIT.UNAVAILABLE);
  t.match(down.stderr, 'STORE_UNAVAILABLE');
  t.notOk(existsSync(join(dir, 'mailmesh.yaml')), 'nothing written');
  const offline = await cli(dir, ['cluster', 'join', 'b.json', '--offline'], { MAILMESH_CLUSTER_PASSPHRASE: 'pass' });
  t.equal(offline.code, 0, offline.stderr);
  t.ok(existsSync(join(dir, 'mailmesh.yaml')));
  throwsCode(t, () => openBundle(sealBundle({ ...CREDS, webmailKeys: [{ version: 0, key: 'x' }] }, 'p'), 'p'), 'CLUSTER_BUNDLE_INVALID');
});
