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
import { ConfigSchema, type Config } from './config.js';

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
  /** The exporting node's listening faces and public URL; absent in bundles of older versions. */
  faces?: FaceSettings;
}

/** The settings of each listening face that every node of a cluster shares (docs/cluster.md "Joining a node"). */
export type FaceSettings = Partial<Record<(typeof FACES)[number], { enabled: boolean; host: string; port: number; publicUrl?: string }>>;
const FACES = ['http', 'dns', 'ldap', 'smtp'] as const;

/** The faces of a configuration, as a bundle carries them. */
function facesOf(c: Config): FaceSettings {
  const out: FaceSettings = {};
  for (const f of FACES) out[f] = { enabled: c[f].enabled, host: c[f].host, port: c[f].port };
  if (c.http.publicUrl) out.http!.publicUrl = c.http.publicUrl;
  return out;
}

/** Only the face keys, each checked by the configuration schema: a bundle sets nothing else. */
function checkFaces(faces: unknown): FaceSettings {
  const bad = (why: string) => new MailmeshError('CLUSTER_BUNDLE_INVALID', `bad face settings: ${why}`);
  if (!faces || typeof faces !== 'object' || Array.isArray(faces)) throw bad('not an object');
  const out: FaceSettings = {};
  for (const [name, v] of Object.entries(faces as Record<string, unknown>)) {
    if (!(FACES as readonly string[]).includes(name)) throw bad(`unknown face ${JSON.stringify(name)}`);
    const allowed = name === 'http' ? ['enabled', 'host', 'port', 'publicUrl'] : ['enabled', 'host', 'port'];
    if (!v || typeof v !== 'object' || Object.keys(v).some((k) => !allowed.includes(k))) throw bad(`${name}: only ${allowed.join(', ')}`);
    const parsed = ConfigSchema.shape[name as (typeof FACES)[number]].safeParse(v);
    if (!parsed.success) throw bad(`${name}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    out[name as (typeof FACES)[number]] = v as FaceSettings['http'];
  }
  return out;
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
  if (creds.faces !== undefined) creds.faces = checkFaces(creds.faces);
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
    return sealBundle({ store: { url: c.store.url, redisPrefix: c.store.redisPrefix }, masterKey: masterKey.toString('base64'), webmailKeys, faces: facesOf(c) }, passphrase);
  } finally {
    await d.store.close();
  }
}

/**
 * `mailmesh cluster join`: checks the bundle against the store (it answers, the master key
 * opens it; WebMail keys it lacks are put back, ones it holds must match), then writes the
 * configuration file (the store, the master key file and the exporting node's faces) and, next
 * to it, the master key file (both mode 0600: the configuration holds the store URL with its
 * password). Refuses to overwrite either; nothing is written when the bundle does not open or
 * does not fit the store. `offline` skips the store (a node prepared before its store can be reached).
 */
export async function joinCluster(bundle: string, passphrase: string, configOut: string, opts: { offline?: boolean } = {}): Promise<{ config: string; keyFile: string; restored?: number[]; faces?: FaceSettings }> {
  const creds = openBundle(bundle, passphrase);
  const config = resolve(configOut);
  const keyFile = join(dirname(config), 'master.key');
  for (const f of [config, keyFile]) if (existsSync(f)) throw new MailmeshError('CONFIG_INVALID', `${f} exists already`);
  const restored = opts.offline ? undefined : await fitStore(creds);
  mkdirSync(dirname(config), { recursive: true });
  writeFileSync(keyFile, creds.masterKey + '\n', { mode: 0o600, flag: 'wx' });
  writeFileSync(config, stringify({ store: creds.store, masterKey: { file: keyFile }, ...creds.faces }), { mode: 0o600, flag: 'wx' });
  return { config, keyFile, restored, faces: creds.faces };
}

/** What `cluster join` tells the administrator: the faces written, and what the bundle does not carry. */
export function joinReport(w: Awaited<ReturnType<typeof joinCluster>>): string {
  const lines = [`wrote ${w.config} and ${w.keyFile}`];
  if (w.faces) {
    const faces = FACES.flatMap((f) => {
      const v = w.faces![f];
      if (!v) return [];
      return [`${f} ${v.enabled ? `${v.host.includes(':') ? `[${v.host}]` : v.host}:${v.port}` : 'off'}${v.publicUrl ? ` (publicUrl ${v.publicUrl})` : ''}`];
    });
    lines.push(`faces as on the exporting node: ${faces.join(', ')}`);
  } else {
    lines.push('the bundle carries no face settings (made by an older version): this node listens on the default hosts and ports; set http, dns, ldap and smtp host/port (and http.publicUrl) as on the other nodes');
  }
  lines.push('not in the bundle, copy from the exporting node if it sets them: policy, federation, smtp next hops and domains, dns zone settings, webmail, TLS certificate files');
  return lines.join('\n');
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
