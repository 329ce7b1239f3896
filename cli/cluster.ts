import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { MailmeshError } from '../directory/errors.js';
import { Directory } from '../directory/directory.js';
import { decodeMasterKey, loadMasterKey } from '../directory/seal.js';
import { openStore } from '../directory/store/open.js';
import { WebmailKeys } from '../gateway/webmail/crypto.js';
import { openDirectory } from './app.js';
import { isB64, openJson, sealJson, type BundleKind } from './bundle.js';
import type { Config } from './config.js';

/**
 * What a new node of a gateway cluster needs: the shared store and the master key. Everything
 * else a node serves (domain keys, WebMail keys, registrations) lives in the store, sealed
 * under the master key (directory/seal.ts). The WebMail keys travel too, as a copy: they are
 * what opens messages already in recipients' mailboxes, so a store rebuilt after a loss gets
 * them back on the next join.
 */
export interface ClusterCredentials {
  store: { url: string; redisPrefix: string };
  masterKey: string;
  /** Every WebMail key version (base64); absent in bundles of nodes without WebMail keys. */
  webmailKeys?: { version: number; key: string }[];
}

/** Only a Redis store can be shared by a cluster's nodes. */
const REDIS_URL = /^(rediss?|redis-sentinel|redis-cluster):/;
const CLUSTER_BUNDLE: BundleKind = { field: 'mailmeshCluster', version: 1, invalid: 'CLUSTER_BUNDLE_INVALID', decrypt: 'CLUSTER_BUNDLE_DECRYPT' };

/** Encrypts the credentials with a key derived from the passphrase (cli/bundle.ts: scrypt, AES-256-GCM); versioned JSON. */
export function sealBundle(creds: ClusterCredentials, passphrase: string, rand?: (n: number) => Buffer): string {
  return sealJson(CLUSTER_BUNDLE, creds, passphrase, rand);
}

/** Decrypts a bundle; CLUSTER_BUNDLE_INVALID for anything that is not one, CLUSTER_BUNDLE_DECRYPT for a wrong passphrase or an altered bundle. */
export function openBundle(text: string, passphrase: string): ClusterCredentials {
  const creds = openJson(CLUSTER_BUNDLE, text, passphrase) as ClusterCredentials;
  if (typeof creds?.store?.url !== 'string' || typeof creds.store.redisPrefix !== 'string' || typeof creds.masterKey !== 'string') {
    throw new MailmeshError('CLUSTER_BUNDLE_INVALID', 'missing fields');
  }
  if (!REDIS_URL.test(creds.store.url)) throw new MailmeshError('CLUSTER_BUNDLE_INVALID', 'the store is not Redis');
  // WebMail key versions are numbered 1, 2, … without gaps (gateway/webmail/crypto.ts).
  const w = creds.webmailKeys;
  if (w !== undefined && !(Array.isArray(w) && w.every((k, i) => k?.version === i + 1 && isB64(k.key, 32)))) {
    throw new MailmeshError('CLUSTER_BUNDLE_INVALID', 'bad WebMail keys');
  }
  return creds;
}

/**
 * The passphrase: from a file (first line; `-` is standard input) or the environment variable
 * `name` (MAILMESH_CLUSTER_PASSPHRASE; MAILMESH_BACKUP_PASSPHRASE for backups) — never from the command line.
 */
export function readPassphrase(file: string | undefined, env: NodeJS.ProcessEnv, name = 'MAILMESH_CLUSTER_PASSPHRASE'): string {
  const p = file ? readFileSync(file === '-' ? 0 : file, 'utf8').split(/\r?\n/)[0]! : env[name];
  if (!p) throw new MailmeshError('CONFIG_INVALID', `no passphrase: use --passphrase-file <file> (- for standard input) or ${name}`);
  return p;
}

/** `mailmesh cluster export`: this node's credentials, after checking that they open the store. */
export async function exportCluster(c: Config, passphrase: string): Promise<string> {
  if (!REDIS_URL.test(c.store.url)) {
    throw new MailmeshError('CONFIG_INVALID', `store.url must be a Redis store shared by the cluster, not ${c.store.url.split(':')[0]}:`);
  }
  const d = await openDirectory(c, { createKey: false });
  const masterKey = loadMasterKey({ value: c.masterKey.value, file: c.masterKey.file, create: false });
  try {
    const webmailKeys = (await WebmailKeys.readAll(d.store, masterKey)).map((k) => ({ version: k.version, key: k.key.toString('base64') }));
    return sealBundle({ store: { url: c.store.url, redisPrefix: c.store.redisPrefix }, masterKey: masterKey.toString('base64'), webmailKeys }, passphrase);
  } finally {
    await d.store.close();
  }
}

/**
 * `mailmesh cluster join`: checks the bundle against the store (it answers, the master key
 * opens it; WebMail keys it lacks are put back, ones it holds must match), then writes the
 * configuration file and, next to it, the master key file (both mode 0600: the configuration
 * holds the store URL with its password). Refuses to overwrite either; nothing is written when
 * the bundle does not open or does not fit the store. `offline` skips the store (a node
 * prepared before its store can be reached).
 */
export async function joinCluster(bundle: string, passphrase: string, configOut: string, opts: { offline?: boolean } = {}): Promise<{ config: string; keyFile: string; restored?: number[] }> {
  const creds = openBundle(bundle, passphrase);
  const config = resolve(configOut);
  const keyFile = join(dirname(config), 'master.key');
  for (const f of [config, keyFile]) if (existsSync(f)) throw new MailmeshError('CONFIG_INVALID', `${f} exists already`);
  const restored = opts.offline ? undefined : await fitStore(creds);
  mkdirSync(dirname(config), { recursive: true });
  writeFileSync(keyFile, creds.masterKey + '\n', { mode: 0o600, flag: 'wx' });
  writeFileSync(config, stringify({ store: creds.store, masterKey: { file: keyFile } }), { mode: 0o600, flag: 'wx' });
  return { config, keyFile, restored };
}

async function fitStore(creds: ClusterCredentials): Promise<number[]> {
  const masterKey = decodeMasterKey(creds.masterKey);
  const store = await openStore(creds.store.url, { redisPrefix: creds.store.redisPrefix });
  try {
    await Directory.checkMasterKey(store, masterKey);
    return await WebmailKeys.restore(store, masterKey, (creds.webmailKeys ?? []).map((k) => ({ version: k.version, key: Buffer.from(k.key, 'base64') })));
  } finally {
    await store.close();
  }
}
