import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { MailmeshError } from '../directory/errors.js';
import { Directory } from '../directory/directory.js';
import { decodeMasterKey, loadMasterKey } from '../directory/seal.js';
import { openStore } from '../directory/store/open.js';
import { WebmailKeys } from '../gateway/webmail/crypto.js';
import { openDirectory } from './app.js';
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

const VERSION = 1;
/** Only a Redis store can be shared by a cluster's nodes. */
const REDIS_URL = /^(rediss?|redis-sentinel|redis-cluster):/;
// scrypt cost: 2^15 × 8 × 128 B = 32 MiB of memory, a fraction of a second per try.
const KDF = { N: 2 ** 15, r: 8, p: 1 };

interface Bundle {
  mailmeshCluster: number;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  iv: string;
  tag: string;
  data: string;
}

function key(passphrase: string, salt: Buffer, kdf: { N: number; r: number; p: number }): Buffer {
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { ...kdf, maxmem: 256 * kdf.N * kdf.r });
}

/** The header fields, authenticated with the ciphertext (GCM additional data): altering any of them fails decryption. */
function aad(b: Pick<Bundle, 'mailmeshCluster' | 'kdf' | 'cipher' | 'iv'>): Buffer {
  return Buffer.from(JSON.stringify([b.mailmeshCluster, b.kdf.name, b.kdf.N, b.kdf.r, b.kdf.p, b.kdf.salt, b.cipher, b.iv]));
}

/** Encrypts the credentials with a key derived from the passphrase (scrypt, AES-256-GCM); versioned JSON. */
export function sealBundle(creds: ClusterCredentials, passphrase: string, rand: (n: number) => Buffer = randomBytes): string {
  if (!passphrase) throw new MailmeshError('CONFIG_INVALID', 'an empty passphrase');
  const salt = rand(16);
  const iv = rand(12);
  const head = { mailmeshCluster: VERSION, kdf: { name: 'scrypt' as const, ...KDF, salt: salt.toString('base64') }, cipher: 'aes-256-gcm' as const, iv: iv.toString('base64') };
  const c = createCipheriv('aes-256-gcm', key(passphrase, salt, KDF), iv);
  c.setAAD(aad(head));
  const data = Buffer.concat([c.update(JSON.stringify(creds), 'utf8'), c.final()]);
  const bundle: Bundle = { ...head, tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
  return JSON.stringify(bundle, null, 2) + '\n';
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const isB64 = (v: unknown, len?: number): v is string => typeof v === 'string' && B64.test(v) && (len === undefined || Buffer.from(v, 'base64').length === len);

/** Decrypts a bundle; CLUSTER_BUNDLE_INVALID for anything that is not one, CLUSTER_BUNDLE_DECRYPT for a wrong passphrase or an altered bundle. */
export function openBundle(text: string, passphrase: string): ClusterCredentials {
  let b: Bundle;
  try {
    b = JSON.parse(text) as Bundle;
  } catch {
    throw new MailmeshError('CLUSTER_BUNDLE_INVALID', 'not JSON');
  }
  if (!b || typeof b !== 'object') throw new MailmeshError('CLUSTER_BUNDLE_INVALID', 'not a JSON object');
  if (b.mailmeshCluster !== VERSION) throw new MailmeshError('CLUSTER_BUNDLE_INVALID', `unknown version ${JSON.stringify(b.mailmeshCluster)}`);
  const k = b.kdf;
  // The cost parameters are bounded so that a crafted bundle cannot make us spend gigabytes.
  if (!k || k.name !== 'scrypt' || k.N !== KDF.N || k.r !== KDF.r || k.p !== KDF.p || !isB64(k.salt, 16)) {
    throw new MailmeshError('CLUSTER_BUNDLE_INVALID', 'unsupported key derivation');
  }
  if (b.cipher !== 'aes-256-gcm' || !isB64(b.iv, 12) || !isB64(b.tag, 16) || !isB64(b.data)) throw new MailmeshError('CLUSTER_BUNDLE_INVALID', 'unsupported cipher or bad fields');
  let plain: string;
  try {
    const d = createDecipheriv('aes-256-gcm', key(passphrase, Buffer.from(k.salt, 'base64'), KDF), Buffer.from(b.iv, 'base64'));
    d.setAAD(aad(b));
    d.setAuthTag(Buffer.from(b.tag, 'base64'));
    plain = Buffer.concat([d.update(Buffer.from(b.data, 'base64')), d.final()]).toString('utf8');
  } catch {
    throw new MailmeshError('CLUSTER_BUNDLE_DECRYPT');
  }
  const creds = JSON.parse(plain) as ClusterCredentials;
  if (typeof creds.store?.url !== 'string' || typeof creds.store.redisPrefix !== 'string' || typeof creds.masterKey !== 'string') {
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

/** The passphrase: from a file (first line) or MAILMESH_CLUSTER_PASSPHRASE — never from the command line. */
export function readPassphrase(file: string | undefined, env: NodeJS.ProcessEnv): string {
  const p = file ? readFileSync(file, 'utf8').split(/\r?\n/)[0]! : env.MAILMESH_CLUSTER_PASSPHRASE;
  if (!p) throw new MailmeshError('CONFIG_INVALID', 'no passphrase: use --passphrase-file <file> or MAILMESH_CLUSTER_PASSPHRASE');
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
