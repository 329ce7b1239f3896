import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { migrate, schemaName, upgradePlan, type Migration } from '../directory/store/migrate.js';
import { openStore } from '../directory/store/open.js';
import type { Config } from './config.js';
import { EXIT, exitCodeFor, failureText } from './exit.js';

/** Runs a store command: its text on stdout, an error as `mailmesh: CODE: message` on stderr with its exit code (cli/exit.ts). */
export async function storeCommand(f: () => Promise<{ text: string; exitCode: number }>): Promise<void> {
  try {
    const r = await f();
    console.log(r.text);
    process.exitCode = r.exitCode;
  } catch (err) {
    const text = failureText(err);
    if (text) process.stderr.write(`mailmesh: ${text}\n`);
    process.exitCode = exitCodeFor(err);
  }
}

/** A lease owner name for this process (directory/lease.ts). */
export const processOwner = (): string => `${hostname()}:${process.pid}:${randomUUID()}`;

const line = (m: Migration) => `  ${m.number}  ${m.description}`;

/**
 * `mailmesh upgrade [--check]`: the store's schema, the code's, the pending migrations; exit 0
 * when up to date, 1 when migrations are pending (--check), 78 when the store is newer.
 * Without --check it runs them (under the store lease, as serve does).
 */
export async function upgradeCommand(c: Config, check: boolean): Promise<{ text: string; exitCode: number }> {
  const store = await openStore(c.store.url, { redisPrefix: c.store.redisPrefix });
  try {
    const plan = await upgradePlan(store);
    const head = [`store schema ${schemaName(plan.store)}`, `code schema  ${schemaName(plan.code)}`];
    if (!plan.pending.length) return { text: [...head, 'up to date'].join('\n'), exitCode: EXIT.OK };
    if (check) return { text: [...head, 'pending migrations:', ...plan.pending.map(line)].join('\n'), exitCode: EXIT.FAILURE };
    const ran = await migrate(store, { owner: processOwner() });
    return { text: [...head, 'migrated:', ...ran.map(line), `store schema ${schemaName(plan.code)}`].join('\n'), exitCode: EXIT.OK };
  } finally {
    await store.close();
  }
}

/** What serve does before it opens the directory: refuses a newer store (STORE_SCHEMA_NEWER), runs the pending migrations. */
export async function migrateAtStart(c: Config, log: { info(o: object, msg: string): void }): Promise<void> {
  const store = await openStore(c.store.url, { redisPrefix: c.store.redisPrefix });
  try {
    const ran = await migrate(store, { owner: processOwner(), onStep: (m) => log.info({ migration: m.number, description: m.description }, 'migrating the store') });
    if (ran.length) log.info({ schema: ran[ran.length - 1]!.number }, 'store migrated');
  } finally {
    await store.close();
  }
}
