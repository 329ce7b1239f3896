import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Directory } from '../directory/directory.js';
import { MailmeshError } from '../directory/errors.js';
import { decodeMasterKey, loadMasterKey } from '../directory/seal.js';
import { CODE_SCHEMA, schemaName, upgradePlan } from '../directory/store/migrate.js';
import { openStore } from '../directory/store/open.js';
import { storeIsEmpty, type Store, type StoreEntry } from '../directory/store/store.js';
import { isB64, openJson, sealJson, type BundleKind } from './bundle.js';
import type { Command } from 'commander';
import { readPassphrase } from './cluster.js';
import type { Config } from './config.js';
import { EXIT } from './exit.js';
import { storeCommand, upgradeCommand } from './upgrade.js';

/**
 * A backup (docs/backup.md): every record, meta value and kv entry of the store as
 * `StoreEntry`s, the schema version it had, and the master key the sealed values need,
 * encrypted under a passphrase (cli/bundle.ts).
 */
export interface Backup {
  created: string;
  source: { kind: Store['kind']; schema: number };
  masterKey: string;
  entries: StoreEntry[];
}

export const BACKUP: BundleKind = { field: 'mailmeshBackup', version: 1, invalid: 'BACKUP_INVALID', decrypt: 'BACKUP_DECRYPT' };

async function withStore<T>(c: Config, f: (s: Store) => Promise<T>): Promise<T> {
  const store = await openStore(c.store.url, { redisPrefix: c.store.redisPrefix });
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

/** `mailmesh backup`: the bundle text, after checking that the master key opens the store. */
/** A backup carries the master key: its passphrase is all that stands between a copy of the bundle and every private key. */
export const MIN_BACKUP_PASSPHRASE = 12;

export async function backupStore(c: Config, passphrase: string, now = new Date()): Promise<{ bundle: string; entries: number }> {
  if ([...passphrase].length < MIN_BACKUP_PASSPHRASE) throw new MailmeshError('BACKUP_WEAK_PASSPHRASE', `use at least ${MIN_BACKUP_PASSPHRASE} characters`);
  const masterKey = loadMasterKey({ value: c.masterKey.value, file: c.masterKey.file, create: false });
  return withStore(c, async (store) => {
    await Directory.checkMasterKey(store, masterKey);
    const { store: schema } = await upgradePlan(store);
    const entries: StoreEntry[] = [];
    for await (const e of store.entries()) entries.push(e);
    const b: Backup = { created: now.toISOString(), source: { kind: store.kind, schema }, masterKey: masterKey.toString('base64'), entries };
    return { bundle: sealJson(BACKUP, b, passphrase), entries: entries.length };
  });
}

const str = (v: unknown): v is string => typeof v === 'string';

function validEntry(e: StoreEntry): boolean {
  if (e?.kind === 'meta') return str(e.name) && str(e.value);
  if (e?.kind === 'log') return Number.isSafeInteger(e.index) && e.index >= 0 && isB64(e.entry);
  if (e?.kind === 'kv') return str(e.key) && str(e.value) && (e.expiresAt === undefined || (Number.isSafeInteger(e.expiresAt) && e.expiresAt > 0));
  if (e?.kind === 'record') {
    const r = e.record;
    return str(r?.domain) && str(r.status) && Number.isSafeInteger(r.serial) && r.serial > 0 && (e.secrets === undefined || isB64(e.secrets));
  }
  return false;
}

/** Decrypts and checks a backup; nothing is touched yet. */
export function openBackup(text: string, passphrase: string): Backup {
  const b = openJson(BACKUP, text, passphrase) as Backup;
  if (!b || !isB64(b.masterKey, 32) || !Number.isSafeInteger(b.source?.schema) || !Array.isArray(b.entries)) throw new MailmeshError('BACKUP_INVALID', 'missing fields');
  const bad = b.entries.findIndex((e) => !validEntry(e));
  if (bad >= 0) throw new MailmeshError('BACKUP_INVALID', `entry ${bad} is malformed`);
  if (b.source.schema > CODE_SCHEMA) throw new MailmeshError('STORE_SCHEMA_NEWER', `the backup has schema ${schemaName(b.source.schema)}, this code knows up to ${schemaName(CODE_SCHEMA)}`);
  return b;
}

/**
 * `mailmesh restore`: writes a backup into the configured store, which must be empty (or,
 * with `force`, is emptied first), then the master key file if this node has none. A node
 * that has a master key must have the backup's. Every check comes before the first write.
 */
export async function restoreStore(c: Config, text: string, passphrase: string, opts: { force?: boolean } = {}): Promise<{ text: string; exitCode: number }> {
  const b = openBackup(text, passphrase);
  const masterKey = decodeMasterKey(b.masterKey);
  const own = c.masterKey.value || existsSync(c.masterKey.file) ? loadMasterKey({ value: c.masterKey.value, file: c.masterKey.file, create: false }) : undefined;
  if (own && !own.equals(masterKey)) throw new MailmeshError('BACKUP_KEY_MISMATCH', `move ${c.masterKey.value ? 'MAILMESH_MASTER_KEY' : c.masterKey.file} away: restore writes the backup's key`);
  await withStore(c, async (store) => {
    if (!(await storeIsEmpty(store)) && !opts.force) throw new MailmeshError('STORE_NOT_EMPTY', `the ${store.kind} store of store.url holds data`);
    // The key first: a store restored without it could not be opened.
    if (!own) mkdirSync(dirname(c.masterKey.file), { recursive: true, mode: 0o700 });
    if (!own) writeFileSync(c.masterKey.file, b.masterKey + '\n', { mode: 0o600, flag: 'wx' });
    let done = 0;
    try {
      await store.clear();
      for (const e of b.entries) {
        await store.restoreEntry(e);
        done++;
      }
    } catch (err) {
      // The bundle is intact: running restore again with --force finishes the job.
      throw new MailmeshError('RESTORE_INCOMPLETE', `${done} of ${b.entries.length} entries written (${(err as Error).message}): run restore again with --force`, { cause: err });
    }
  });
  const text2 = `restored ${b.entries.length} entries (schema ${schemaName(b.source.schema)}, from a ${b.source.kind} store, ${b.created})${own ? '' : `; wrote the master key to ${c.masterKey.file}`}`;
  return { text: text2, exitCode: EXIT.OK };
}

/** `mailmesh upgrade`, `backup` and `restore` (docs/backup.md); `config` reads the configuration when a command runs. */
export function registerStoreCommands(program: Command, config: () => Config): void {
  const pass = (o: { passphraseFile?: string }) => readPassphrase(o.passphraseFile, process.env, 'MAILMESH_BACKUP_PASSPHRASE');
  const passOption = ['--passphrase-file <file>', 'the passphrase (first line; - for standard input); default $MAILMESH_BACKUP_PASSPHRASE'] as const;
  program
    .command('upgrade')
    .description('show the store\'s schema version, the code\'s and the pending migrations (--check), or run them')
    .option('--check', 'only show; exit 1 when migrations are pending, 78 when the store is newer than this code')
    .action(async (o: { check?: boolean }) => storeCommand(() => upgradeCommand(config(), o.check ?? false)));
  program
    .command('backup')
    .description('write a passphrase-encrypted bundle of the whole store (records, sealed keys, meta values, every kv entry) and the master key')
    .requiredOption('--out <file>', 'the bundle file (written with mode 0600, never over an existing file)')
    .option(...passOption)
    .action(async (o: { out: string; passphraseFile?: string }) =>
      storeCommand(async () => {
        const b = await backupStore(config(), pass(o));
        writeFileSync(o.out, b.bundle, { mode: 0o600, flag: 'wx' });
        return { text: `wrote ${b.entries} entries to ${o.out}`, exitCode: EXIT.OK };
      }));
  program
    .command('restore <bundle>')
    .description('restore a backup bundle into the configured store (it must be empty), and the master key file if this node has none')
    .option(...passOption)
    .option('--force', 'empty a store that holds data first')
    .action(async (file: string, o: { passphraseFile?: string; force?: boolean }) =>
      storeCommand(async () => {
        if (!existsSync(file)) throw new MailmeshError('BACKUP_INVALID', `${file}: no such file`);
        return restoreStore(config(), readFileSync(file, 'utf8'), pass(o), { force: o.force });
      }));
}
