import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Domain } from '../../../directory/domain.js';
import { SqliteStore } from '../../../directory/store/sqlite.js';
import { tempDir, throwsCode } from '../../helpers.js';
import { draft, storeContract } from './contract.js';

storeContract(t, async () => {
  const s = new SqliteStore(join(tempDir(t), 'store.db'));
  t.teardown(() => s.close());
  return s;
}, async () => {
  let now = 1_000_000;
  const store = new SqliteStore(join(tempDir(t), 'clocked.db'), { clock: () => now });
  t.teardown(() => store.close());
  return { store, advance: (ms) => (now += ms) };
});

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
