import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig } from '../../cli/config.js';
import { CODE_SCHEMA, SCHEMA_KEY } from '../../directory/store/migrate.js';
import { openStore } from '../../directory/store/open.js';
import { SqliteStore } from '../../directory/store/sqlite.js';
import { loadMasterKey } from '../../directory/seal.js';
import { WebmailKeys } from '../../gateway/webmail/crypto.js';
import { regKey } from '../../gateway/webmail/registrations.js';
import { answers } from './answers.js';
import { FIXTURE_DOMAINS, nodeDir, recorded, redisFixtureNode, sqliteFixtureNode } from './fixture.js';
import { cli, startServe } from './helpers.js';

/** What the 0.1.0 node held besides records: its pin, its WebMail key and a registration, read by this code. */
async function keepsTheRest(t: Test, dir: string) {
  const pins = await cli(dir, ['pins', 'list']);
  t.match(pins.stdout.toString(), /partner\.example/, 'the pin');
  const c = loadConfig({ file: join(dir, 'mailmesh.yaml'), env: {}, cwd: dir });
  const store = await openStore(c.store.url.replace('sqlite:./', `sqlite:${dir}/`), { redisPrefix: c.store.redisPrefix });
  try {
    t.same((await WebmailKeys.readAll(store, loadMasterKey({ file: join(dir, 'master.key'), create: false }))).map((k) => k.version), [1], 'the WebMail key opens');
    t.match(await store.kvGet(regKey('carol@alpha.test')), /"hash":/, 'the WebMail registration');
    t.equal(await store.kvGet(SCHEMA_KEY), String(CODE_SCHEMA), 'the store is stamped');
  } finally {
    await store.close();
  }
}

/**
 * A node's answers as 0.1.0 gave them: the REST record's one added member, `transparency` (the
 * held records are logged when the upgraded node opens the store, docs/transparency.md), is checked
 * to be there and set aside; everything else must be as it was.
 */
async function asBefore(t: Test, faces: Parameters<typeof answers>[0], domain: string) {
  const now = await answers(faces, domain);
  const { transparency, ...rest } = now.rest as Record<string, unknown>;
  t.ok(transparency, `${domain}: the held record was logged, and its proof is served`);
  return { ...now, rest };
}

async function servesAsBefore(t: Test, dir: string, kind: 'sqlite' | 'redis') {
  const node = await startServe(t, dir);
  t.ok(node.lines.some((l) => l.msg === 'migrating the store' && l.migration === 1), 'serve migrated at start');
  const before = recorded(kind);
  for (const d of FIXTURE_DOMAINS) t.same(await asBefore(t, node.addresses, d), before[d], `${d}: REST, WKD, DNS TXT and OPENPGPKEY, LDAP answer as 0.1.0 did`);
  node.child.kill('SIGTERM');
  await node.exited;
}

t.test('a 0.1.0 SQLite store: upgrade --check reports the migration pending; serve migrates and answers as 0.1.0 did', async (t) => {
  const dir = sqliteFixtureNode(t);
  const check = await cli(dir, ['upgrade', '--check']);
  t.equal(check.code, 1, check.stderr);
  t.match(check.stdout.toString(), /store schema 0 \(0\.1\.0\)[\s\S]*code schema +1 \(0\.2\.0\)[\s\S]*pending migrations:\n +1 +mark the store/);
  await servesAsBefore(t, dir, 'sqlite');
  const after = await cli(dir, ['upgrade', '--check']);
  t.equal(after.code, 0, after.stderr);
  t.match(after.stdout.toString(), /store schema 1 \(0\.2\.0\)[\s\S]*up to date/);
  await keepsTheRest(t, dir);
});

t.test('a 0.1.0 Redis store: upgrade runs the migration, then serve answers as 0.1.0 did', async (t) => {
  const dir = await redisFixtureNode(t);
  t.equal((await cli(dir, ['upgrade', '--check'])).code, 1);
  const up = await cli(dir, ['upgrade']);
  t.equal(up.code, 0, up.stderr);
  t.match(up.stdout.toString(), /migrated:\n +1 +mark the store/);
  t.equal((await cli(dir, ['upgrade', '--check'])).code, 0);
  const node = await startServe(t, dir);
  t.notOk(node.lines.some((l) => l.msg === 'migrating the store'), 'nothing left to migrate at start');
  const before = recorded('redis');
  for (const d of FIXTURE_DOMAINS) t.same(await asBefore(t, node.addresses, d), before[d], `${d} answers as 0.1.0 did`);
  node.child.kill('SIGTERM');
  await node.exited;
  await keepsTheRest(t, dir);
});

t.test('a store newer than the code: upgrade --check exits 78, serve refuses to start, the store is left alone', async (t) => {
  const dir = nodeDir(t, '{ url: "sqlite:./store.db" }');
  const s = new SqliteStore(join(dir, 'store.db'));
  await s.kvPut(SCHEMA_KEY, String(CODE_SCHEMA + 1));
  await s.close();
  const check = await cli(dir, ['upgrade', '--check']);
  t.equal(check.code, 78);
  t.match(check.stderr, /STORE_SCHEMA_NEWER: .*schema 2 \(a later release\)/);
  const up = await cli(dir, ['upgrade']);
  t.equal(up.code, 78);
  const serve = await cli(dir, ['serve']);
  t.equal(serve.code, 78);
  t.match(serve.stderr, /STORE_SCHEMA_NEWER/);
  const add = await cli(dir, ['domain', 'add', 'new.test']);
  t.equal(add.code, 78, 'the other commands refuse it too');
  t.match(add.stderr, /STORE_SCHEMA_NEWER/);
  const again = new SqliteStore(join(dir, 'store.db'));
  t.teardown(() => again.close());
  t.equal(await again.kvGet(SCHEMA_KEY), String(CODE_SCHEMA + 1));
  t.equal(await again.getMeta('master-key-check'), undefined, 'serve wrote nothing');
});
