import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { Directory } from '../../directory/directory.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { SqliteStore } from '../../directory/store/sqlite.js';
import { rejectsCode, tempDir } from '../helpers.js';
import { alive } from './store/record-contract.js';

const opts = { keys: { openpgp: 'curve25519' as const, validDays: 30 } };

t.test('a domain is added once, found by domain, address and fingerprint, and removed', async (t) => {
  const fixed = new Date('2026-06-01T12:00:00Z');
  const d = await Directory.open(new MemoryStore(), randomBytes(32), { ...opts, clock: () => fixed });
  const changes: string[] = [];
  d.on('change', (r) => changes.push(`${r.domain}:${r.status}`));
  const r = await d.addDomain('Example.ORG');
  t.equal(r.domain, 'example.org');
  t.equal(r.updated, fixed.toISOString(), 'the injected clock is used');
  t.equal(r.provenance.source, 'local');
  t.same(r.formats, ['pgp-mime', 'smime']);
  await rejectsCode(t, d.addDomain('example.org'), 'DOMAIN_EXISTS');
  await rejectsCode(t, d.addDomain('not a domain'), 'DOMAIN_INVALID');
  t.equal((await d.lookup({ domain: 'EXAMPLE.org' }))?.serial, r.serial);
  t.equal((await d.lookup({ address: 'anyone@example.org' }))?.domain, 'example.org');
  t.equal((await d.lookup({ fingerprint: r.keys.openpgp!.fingerprint.toLowerCase() }))?.domain, 'example.org');
  t.equal((await d.lookup({ fingerprint: r.keys.smime!.fingerprint }))?.domain, 'example.org');
  t.equal(await d.lookup({ address: 'a@other.example' }), undefined);
  const secrets = await d.getSecrets('example.org');
  t.match(secrets.openpgp!.armored, /BEGIN PGP PRIVATE KEY BLOCK/);
  t.match(secrets.smime!.keyPkcs8Pem, /BEGIN PRIVATE KEY/);

  const gone = await d.removeDomain('example.org');
  t.equal(gone.status, 'deleted');
  t.same(gone.keys, {});
  await rejectsCode(t, d.getRecord('example.org'), 'DOMAIN_NOT_FOUND');
  await rejectsCode(t, d.getSecrets('example.org'), 'DOMAIN_NOT_FOUND', 'private keys are erased');
  t.same((await d.changesSince(r.serial, 10)).records.map((x) => x.status), ['deleted'], 'mirrors see the tombstone');
  t.same(await d.listDomains(), []);
  const again = await d.addDomain('example.org');
  t.not(again.keys.openpgp!.fingerprint, r.keys.openpgp!.fingerprint, 'a re-added domain gets new keys');
  t.same(changes, ['example.org:active', 'example.org:deleted', 'example.org:active']);
});

t.test('a restart reuses the keys; a wrong master key is refused and changes nothing', async (t) => {
  const file = join(tempDir(t), 'dir.db');
  const key = randomBytes(32);
  const d1 = await Directory.open(new SqliteStore(file), key, opts);
  const r = await d1.addDomain('restart.example');
  await d1.store.close();

  const wrong = new SqliteStore(file);
  await rejectsCode(t, Directory.open(wrong, randomBytes(32), opts), 'MASTER_KEY_MISMATCH');
  t.equal(await wrong.serial(), r.serial, 'nothing was written');
  await wrong.close();

  const d2 = await Directory.open(new SqliteStore(file), key, opts);
  t.teardown(() => d2.store.close());
  const again = await d2.getRecord('restart.example');
  t.equal(again.keys.openpgp!.fingerprint, r.keys.openpgp!.fingerprint);
  t.equal(again.keys.smime!.fingerprint, r.keys.smime!.fingerprint);
  t.match((await d2.getSecrets('restart.example')).openpgp!.armored, /PRIVATE KEY/);
});

t.test("two directories on one SQLite file (a CLI beside serve): each emits 'change' for the other's writes, once", async (t) => {
  const file = join(tempDir(t), 'shared.db');
  const key = randomBytes(32);
  const serve = await Directory.open(new SqliteStore(file), key, opts);
  const cli = await Directory.open(new SqliteStore(file), key, opts);
  t.teardown(() => Promise.all([serve.store.close(), cli.store.close()]));
  const onServe: string[] = [];
  const onCli: string[] = [];
  serve.on('change', (r) => onServe.push(`${r.domain} ${r.status}`));
  cli.on('change', (r) => onCli.push(`${r.domain} ${r.status}`));
  const heard = (d: Directory, status: string) => alive(new Promise<void>((resolve) => d.on('change', (r) => r.status === status && resolve())));
  const added = heard(serve, 'active');
  await cli.addDomain('shared.example');
  await added;
  const removed = heard(cli, 'deleted');
  await serve.removeDomain('shared.example');
  await removed;
  t.same(onServe, ['shared.example active', 'shared.example deleted'], "serve heard the CLI's write, and its own");
  t.same(onCli, ['shared.example active', 'shared.example deleted'], "the CLI heard serve's write, and its own");
});
