import { MailmeshError } from '../errors.js';
import type { Store } from './store.js';

/**
 * The store's schema version and its migrations (docs/backup.md "Upgrades"). The version is the
 * number of the last migration applied, kept in the kv space under SCHEMA_KEY; a store without
 * it is of the 0.1.0 format (schema 0), the only released format before versions were kept.
 */
export const SCHEMA_KEY = 'store:schema';

export interface Migration {
  /** 1, 2, …: the schema version the store has once this migration ran. */
  readonly number: number;
  /** The release whose code first writes this schema. */
  readonly release: string;
  readonly description: string;
  /** Idempotent: run again on a store it already changed (a node died before the stamp), it changes nothing more. */
  up(store: Store): Promise<void>;
}

/**
 * The migrations, in order. The 0.1.0 format needs no data change: records, secrets, meta values
 * and kv documents are read by this code as they are (optional fields added since, such as a
 * pin's `trust`, have defaults for their absence), so the first migration only stamps the version.
 */
export const MIGRATIONS: readonly Migration[] = [
  { number: 1, release: '0.2.0', description: 'mark the store with its schema version (the 0.1.0 format needs no data change)', up: async () => {} },
];

/** The release of the store format before any version was kept. */
export const UNVERSIONED_RELEASE = '0.1.0';

/** The schema version this code writes: the last migration's. */
export const CODE_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1]!.number;

/** `1 (0.2.0)`: a schema version with the release that introduced it (`?` for one this code does not know). */
export function schemaName(n: number): string {
  return `${n} (${n === 0 ? UNVERSIONED_RELEASE : (MIGRATIONS.find((m) => m.number === n)?.release ?? 'a later release')})`;
}

export interface UpgradePlan {
  store: number;
  code: number;
  pending: readonly Migration[];
}

/** The store's schema version (0 when it carries none: the 0.1.0 format); STORE_SCHEMA_INVALID for a marker that is not a version. */
export async function storeSchema(store: Pick<Store, 'kvGet'>): Promise<number> {
  const v = await store.kvGet(SCHEMA_KEY);
  if (v === undefined) return 0;
  if (!/^\d{1,9}$/.test(v)) throw new MailmeshError('STORE_SCHEMA_INVALID', `${SCHEMA_KEY} is ${JSON.stringify(v)}`);
  return Number(v);
}

/** What `upgrade --check` shows; STORE_SCHEMA_NEWER when the store was written by newer code. */
export async function upgradePlan(store: Pick<Store, 'kvGet'>, migrations: readonly Migration[] = MIGRATIONS): Promise<UpgradePlan> {
  const n = await storeSchema(store);
  const code = migrations[migrations.length - 1]?.number ?? 0;
  if (n > code) {
    throw new MailmeshError('STORE_SCHEMA_NEWER', `the store has schema ${schemaName(n)}, this code knows up to ${schemaName(code)}: run a release that knows it`);
  }
  return { store: n, code, pending: migrations.filter((m) => m.number > n) };
}

export interface MigrateOptions {
  /** This process, as a lease owner (directory/lease.ts). */
  owner: string;
  /** Called before each migration runs. */
  onStep?: (m: Migration) => void;
  /** How long to wait for another node's migration lease (default: twice its life). */
  waitMs?: number;
  /** The list to run (default MIGRATIONS; tests give their own). */
  migrations?: readonly Migration[];
}

/** How long the migration lease lives: a node that dies migrating holds the others back this long at most. */
export const MIGRATION_LEASE_SEC = 60;
const LEASE = 'migrate';

/**
 * Runs the pending migrations under the store lease `migrate`, so that of the nodes of a cluster
 * starting together one migrates and the others wait, then find nothing pending. The version is
 * stamped after each migration, so a run that stops part way resumes at the migration it did
 * not finish. Returns the migrations this process ran.
 */
export async function migrate(store: Store, o: MigrateOptions): Promise<Migration[]> {
  if (!(await upgradePlan(store, o.migrations)).pending.length) return [];
  const deadline = Date.now() + (o.waitMs ?? 2 * MIGRATION_LEASE_SEC * 1000);
  while (!(await store.acquireLease(LEASE, o.owner, MIGRATION_LEASE_SEC))) {
    if (Date.now() > deadline) throw new MailmeshError('STORE_MIGRATION_BUSY', `the lease "${LEASE}" is held by another node`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const ran: Migration[] = [];
  try {
    for (const m of (await upgradePlan(store, o.migrations)).pending) {
      o.onStep?.(m);
      await m.up(store);
      await store.kvPut(SCHEMA_KEY, String(m.number));
      ran.push(m);
    }
  } finally {
    await store.releaseLease(LEASE, o.owner);
  }
  return ran;
}
