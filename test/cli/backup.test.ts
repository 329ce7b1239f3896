import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { RedisStore } from '../../directory/store/redis.js';
import { storeIsEmpty } from '../../directory/store/store.js';
import { BACKUP, openBackup } from '../../cli/backup.js';
import { sealJson } from '../../cli/bundle.js';
import { CODE_SCHEMA } from '../../directory/store/migrate.js';
import { redisPrefix, TEST_REDIS_URL, throwsCode } from '../helpers.js';
import { answers, type Answers } from './answers.js';
import { FIXTURE, FIXTURE_DOMAINS, nodeDir, sqliteFixtureNode } from './fixture.js';
import { cli, startServe } from './helpers.js';

const PASS = { MAILMESH_BACKUP_PASSPHRASE: 'correct horse battery staple' };

/** An empty Redis node without a master key: a new machine with only its configuration. */
function redisNode(t: Parameters<typeof redisPrefix>[0]) {
  const prefix = redisPrefix(t);
  const dir = nodeDir(t, `{ url: "${TEST_REDIS_URL}", redisPrefix: "${prefix}" }`);
  const empty = async () => {
    const s = await new RedisStore(TEST_REDIS_URL, { prefix }).connect();
    try {
      return await storeIsEmpty(s);
    } finally {
      await s.close();
    }
  };
  return { dir, empty };
}

t.test('backup of a SQLite node, restore onto a new Redis node: the same answers over HTTP (REST, WKD), DNS and LDAP; pins and WebMail come along', async (t) => {
  // The source: the 0.1.0 fixture (two domains, a roll in progress, a pin, a WebMail key and registration), migrated by serve.
  const src = sqliteFixtureNode(t);
  const serving = await startServe(t, src);
  const before: Record<string, Answers> = {};
  for (const d of FIXTURE_DOMAINS) before[d] = await answers(serving.addresses, d);
  const bundle = join(src, 'state.bundle');
  const b = await cli(src, ['backup', '--out', bundle], PASS); // while serving: SQLite's WAL gives a consistent read
  t.equal(b.code, 0, b.stderr);
  t.match(b.stdout.toString(), /wrote \d+ entries/);
  t.equal(statSync(bundle).mode & 0o777, 0o600, 'the bundle is private');
  t.notMatch(readFileSync(bundle, 'utf8'), /alpha\.test|BEGIN PGP|master-key-check/, 'nothing in the clear');
  serving.child.kill('SIGTERM');
  await serving.exited;
  const again = await cli(src, ['backup', '--out', bundle], PASS);
  t.not(again.code, 0, 'never over an existing file');

  const dst = redisNode(t);
  const wrong = await cli(dst.dir, ['restore', bundle], { MAILMESH_BACKUP_PASSPHRASE: 'wrong' });
  t.equal(wrong.code, 77);
  t.match(wrong.stderr, /BACKUP_DECRYPT/);
  const altered = join(src, 'altered.bundle');
  const doc = JSON.parse(readFileSync(bundle, 'utf8')) as { data: string };
  const data = Buffer.from(doc.data, 'base64');
  data[10]! ^= 1;
  writeFileSync(altered, JSON.stringify({ ...doc, data: data.toString('base64') }));
  t.equal((await cli(dst.dir, ['restore', altered], PASS)).code, 77, 'an altered bundle does not decrypt');
  writeFileSync(join(src, 'garbage'), readFileSync(bundle, 'utf8').slice(0, 200));
  const garbage = await cli(dst.dir, ['restore', join(src, 'garbage')], PASS);
  t.equal(garbage.code, 65);
  t.match(garbage.stderr, /BACKUP_INVALID/);
  t.equal(await dst.empty(), true, 'the failed restores wrote nothing');
  t.notOk(existsSync(join(dst.dir, 'master.key')), 'nor a key file');

  const r = await cli(dst.dir, ['restore', bundle], PASS);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.toString(), /restored \d+ entries \(schema 1 \(0\.2\.0\), from a sqlite store, .*wrote the master key/);
  t.equal(readFileSync(join(dst.dir, 'master.key'), 'utf8').trim(), readFileSync(join(FIXTURE, 'master.key'), 'utf8').trim(), 'the master key came with the bundle');
  const twice = await cli(dst.dir, ['restore', bundle], PASS);
  t.equal(twice.code, 64);
  t.match(twice.stderr, /STORE_NOT_EMPTY/);
  const forced = await cli(dst.dir, ['restore', '--force', bundle], PASS);
  t.equal(forced.code, 0, forced.stderr);

  const node = await startServe(t, dst.dir);
  for (const d of FIXTURE_DOMAINS) t.same(await answers(node.addresses, d), before[d], `${d}: the new node answers as the old one did`);
  node.child.kill('SIGTERM');
  await node.exited;
  t.match((await cli(dst.dir, ['pins', 'list'])).stdout.toString(), /partner\.example/, 'the pin');
  t.equal((await cli(dst.dir, ['webmail', 'reset', 'carol@alpha.test'])).code, 0, 'the WebMail registration');
  t.equal((await cli(dst.dir, ['upgrade', '--check'])).code, 0, 'the schema version came along');
});

t.test('restore onto a node with another master key is refused and changes nothing', async (t) => {
  const src = sqliteFixtureNode(t);
  const bundle = join(src, 'b');
  t.equal((await cli(src, ['backup', '--out', bundle], PASS)).code, 0);
  const dst = redisNode(t);
  writeFileSync(join(dst.dir, 'master.key'), Buffer.alloc(32, 7).toString('base64') + '\n');
  const r = await cli(dst.dir, ['restore', bundle], PASS);
  t.equal(r.code, 77);
  t.match(r.stderr, /BACKUP_KEY_MISMATCH/);
  t.equal(await dst.empty(), true);
  const otherKey = await cli(src, ['backup', '--out', join(src, 'c')], { ...PASS, MAILMESH_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') });
  t.equal(otherKey.code, 77, 'a backup the key could not restore is refused');
  t.match(otherKey.stderr, /MASTER_KEY_MISMATCH/);
  t.notOk(existsSync(join(src, 'c')));
  const weak = await cli(src, ['backup', '--out', join(src, 'w')], { MAILMESH_BACKUP_PASSPHRASE: 'short' });
  t.equal(weak.code, 64, 'a passphrase too short for a bundle that carries the master key');
  t.match(weak.stderr, /BACKUP_WEAK_PASSPHRASE/);
  t.notOk(existsSync(join(src, 'w')));
  const none = await cli(dst.dir, ['restore', bundle]);
  t.equal(none.code, 78, 'no passphrase given');
  t.match(none.stderr, /MAILMESH_BACKUP_PASSPHRASE/);
});

t.test('the passphrase from standard input', async (t) => {
  const src = sqliteFixtureNode(t);
  const bundle = join(src, 'b');
  t.equal((await cli(src, ['backup', '--out', bundle, '--passphrase-file', '-'], {}, undefined, PASS.MAILMESH_BACKUP_PASSPHRASE + '\n')).code, 0);
  const dst = redisNode(t);
  t.equal((await cli(dst.dir, ['restore', bundle], PASS)).code, 0, 'the same passphrase opens it');
});

t.test('a bundle of a newer schema is refused before anything is written', async (t) => {
  const b = sealJson(BACKUP, { created: new Date().toISOString(), source: { kind: 'sqlite', schema: CODE_SCHEMA + 1 }, masterKey: Buffer.alloc(32).toString('base64'), entries: [] }, 'p');
  throwsCode(t, () => openBackup(b, 'p'), 'STORE_SCHEMA_NEWER');
  const bad = sealJson(BACKUP, { created: '', source: { kind: 'sqlite', schema: 1 }, masterKey: Buffer.alloc(32).toString('base64'), entries: [{ kind: 'record', record: { domain: 'a.example' } }] }, 'p');
  throwsCode(t, () => openBackup(bad, 'p'), 'BACKUP_INVALID');
});
