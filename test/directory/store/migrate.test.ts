import t from 'tap';
import { CODE_SCHEMA, MIGRATIONS, migrate, type Migration, SCHEMA_KEY, storeSchema, upgradePlan } from '../../../directory/store/migrate.js';
import { MemoryStore } from '../../../directory/store/memory.js';
import { rejectsCode } from '../../helpers.js';

t.test('migrations are numbered 1, 2, … in order, each with a release and a description', async (t) => {
  t.same(MIGRATIONS.map((m) => m.number), MIGRATIONS.map((_, i) => i + 1));
  for (const m of MIGRATIONS) t.ok(m.release && m.description, `migration ${m.number}`);
  t.equal(CODE_SCHEMA, MIGRATIONS.length);
});

t.test('a store without a marker is schema 0 (the 0.1.0 format): every migration pending; migrate stamps each', async (t) => {
  const s = new MemoryStore();
  t.equal(await storeSchema(s), 0);
  t.same((await upgradePlan(s)).pending.map((m) => m.number), MIGRATIONS.map((m) => m.number));
  const steps: number[] = [];
  const ran = await migrate(s, { owner: 'a', onStep: (m) => steps.push(m.number) });
  t.same(ran.map((m) => m.number), steps);
  t.equal(await s.kvGet(SCHEMA_KEY), String(CODE_SCHEMA));
  t.same((await upgradePlan(s)).pending, [], 'nothing pending afterwards');
  t.same(await migrate(s, { owner: 'a' }), [], 'a second run does nothing');
  t.equal(await s.acquireLease('migrate', 'someone-else', 60), true, 'the lease was given up');
});

t.test('nodes starting together: one migrates, the others wait for its lease and find nothing pending', async (t) => {
  const s = new MemoryStore();
  const runs = await Promise.all(['a', 'b', 'c'].map((owner) => migrate(s, { owner })));
  t.equal(runs.flat().length, MIGRATIONS.length, 'each migration ran once');
  t.equal(await storeSchema(s), CODE_SCHEMA);
});

t.test('a lease held by another node that never gives it up: STORE_MIGRATION_BUSY, nothing stamped', async (t) => {
  const s = new MemoryStore();
  await s.acquireLease('migrate', 'stuck', 600);
  await rejectsCode(t, migrate(s, { owner: 'a', waitMs: 600 }), 'STORE_MIGRATION_BUSY');
  t.equal(await s.kvGet(SCHEMA_KEY), undefined);
});

t.test('a store newer than the code, or a marker that is not a version, is refused and left as it is', async (t) => {
  const s = new MemoryStore();
  await s.kvPut(SCHEMA_KEY, String(CODE_SCHEMA + 1));
  await rejectsCode(t, upgradePlan(s), 'STORE_SCHEMA_NEWER');
  await rejectsCode(t, migrate(s, { owner: 'a' }), 'STORE_SCHEMA_NEWER');
  t.equal(await s.kvGet(SCHEMA_KEY), String(CODE_SCHEMA + 1));
  await s.kvPut(SCHEMA_KEY, 'two');
  await rejectsCode(t, upgradePlan(s), 'STORE_SCHEMA_INVALID');
});

t.test('a run that stops part way resumes at the migration it did not finish', async (t) => {
  const s = new MemoryStore();
  const ran: number[] = [];
  let failOnce = true;
  const step = (number: number, up: () => void): Migration => ({ number, release: 'test', description: `step ${number}`, up: async () => up() });
  const list = [
    step(1, () => ran.push(1)),
    step(2, () => {
      if (failOnce) {
        failOnce = false;
        throw new Error('the node died');
      }
      ran.push(2);
    }),
    step(3, () => ran.push(3)),
  ];
  await t.rejects(migrate(s, { owner: 'a', migrations: list }), /the node died/);
  t.equal(await storeSchema(s), 1, 'stamped up to the last finished migration');
  t.equal(await s.acquireLease('migrate', 'b', 60), true, 'the lease was given up after the failure');
  await s.releaseLease('migrate', 'b');
  t.same((await migrate(s, { owner: 'b', migrations: list })).map((m) => m.number), [2, 3]);
  t.same(ran, [1, 2, 3], 'each migration ran to its end once');
  t.equal(await storeSchema(s), 3);
});
