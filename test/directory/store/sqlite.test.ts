import { chmodSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Domain } from '../../../directory/domain.js';
import { SqliteStore } from '../../../directory/store/sqlite.js';
import { tempDir, throwsCode } from '../../helpers.js';
import { dumpContract } from './dump-contract.js';
import { kvStoreContract } from './kv-contract.js';
import { logStoreContract } from './log-contract.js';
import { draft, recordStoreContract, subscribeContract } from './record-contract.js';

const fresh = async () => {
  const s = new SqliteStore(join(tempDir(t), 'store.db'));
  t.teardown(() => s.close());
  return s;
};
recordStoreContract(t, fresh);
dumpContract(t, fresh);
kvStoreContract(t, fresh, async () => {
  let now = 1_000_000;
  const store = new SqliteStore(join(tempDir(t), 'clocked.db'), { clock: () => now });
  t.teardown(() => store.close());
  return { store, advance: (ms) => (now += ms) };
});

// Two connections to one file, as a CLI process beside a running serve (the poll of SqliteStore.subscribe).
const shared = async (): Promise<[SqliteStore, SqliteStore]> => {
  const file = join(tempDir(t), 'shared.db');
  const pair: [SqliteStore, SqliteStore] = [new SqliteStore(file), new SqliteStore(file)];
  t.teardown(() => Promise.all(pair.map((s) => s.close())));
  return pair;
};
subscribeContract(t, shared);
logStoreContract(t, fresh, shared);

t.test('sqlite keeps records across reopen', async (t) => {
  const file = join(tempDir(t), 'persist.db');
  const a = new SqliteStore(file);
  await a.putRecord(draft('a.example'), { secrets: Buffer.from('secret') });
  await a.close();
  const b = new SqliteStore(file);
  t.teardown(() => b.close());
  t.equal((await b.getRecord('a.example' as Domain))!.serial, 1);
  t.same(await b.getSecrets('a.example' as Domain), Buffer.from('secret'));
  t.equal((await b.putRecord(draft('b.example'))).serial, 2, 'the serial goes on after reopen');
});

t.test('an unusable sqlite path is STORE_UNAVAILABLE', async (t) => {
  const file = join(tempDir(t), 'a-file');
  writeFileSync(file, 'not a directory');
  throwsCode(t, () => new SqliteStore(join(file, 'x.db')), 'STORE_UNAVAILABLE', 'a path below a file');
  throwsCode(t, () => new SqliteStore(file), 'STORE_UNAVAILABLE', 'a file that is not a database');
});

t.test('the database, its -wal and -shm are 0600 and a data directory it creates is 0700, whatever the umask', async (t) => {
  const old = process.umask(0o022);
  t.teardown(() => void process.umask(old));
  const dataDir = join(tempDir(t), 'data', 'mailmesh');
  const file = join(dataDir, 'mailmesh.db');
  const s = new SqliteStore(file);
  await s.putRecord(draft('a.example'), { secrets: Buffer.from('secret') });
  const mode = (f: string) => statSync(f).mode & 0o777;
  t.ok(existsSync(`${file}-wal`) && existsSync(`${file}-shm`), 'WAL mode made its files');
  for (const f of [file, `${file}-wal`, `${file}-shm`]) t.equal(mode(f).toString(8), '600', f);
  t.equal(mode(dataDir).toString(8), '700', 'data directory');
  t.equal(mode(join(dataDir, '..')).toString(8), '700', 'every directory it made');
  await s.close();
  // A file left world-readable by an older version is narrowed when it is opened again.
  chmodSync(file, 0o644);
  const again = new SqliteStore(file);
  t.teardown(() => again.close());
  t.equal(mode(file).toString(8), '600', 'narrowed on open');
});
