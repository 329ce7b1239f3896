import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { MailmeshError } from '../directory/errors.js';
import { dnsSection, httpSection, ldapSection, smtpSection } from './config/faces.js';
import { acmeSection } from './config/acme.js';
import { federationSection } from './config/federation.js';
import { policySection } from './config/policy.js';

/**
 * The one configuration schema (README "Configuration" lists every key). A YAML file
 * (`mailmesh.yaml`, optional) is read, then the environment overrides it: every key has a
 * variable MAILMESH_<SECTION>__<KEY> (camelCase → SNAKE_CASE, `__` between levels). The larger
 * sections are in cli/config/: the faces (http, dns, ldap, smtp), federation and policy.
 */
export const ConfigSchema = z.strictObject({
  /** Where the embedded store and the master key file live. */
  dataDir: z.string().min(1).default('./data'),
  store: z
    .strictObject({
      /** sqlite:<path> | redis://[user:pass@]host:port[/db] | redis-sentinel://host:port[,…]/<master>[?db=N] | redis-cluster://host:port[,…] | memory: — default sqlite:<dataDir>/mailmesh.db */
      url: z.string().regex(/^(sqlite:.+|(rediss?|redis-sentinel|redis-cluster):\/\/.+|memory:)$/, 'use sqlite:<path>, redis://host:port, redis-sentinel://host:port/<master>, redis-cluster://host:port or memory:').optional(),
      /** Prefix of every Redis key; keep the {hash tag} for Redis Cluster. */
      redisPrefix: z.string().min(1).default('mailmesh:{dir}:'),
    })
    .prefault({}),
  masterKey: z
    .strictObject({
      /** Key file (32 bytes, base64), created with mode 0600 on first start — default <dataDir>/master.key */
      file: z.string().min(1).optional(),
      /** The key itself (base64 or hex), usually from MAILMESH_MASTER_KEY; wins over the file. */
      value: z.string().optional(),
    })
    .prefault({}),
  keys: z
    .strictObject({
      openpgp: z.enum(['curve25519', 'rsa3072']).default('curve25519'),
      validDays: z.number().int().min(1).max(3650).default(730),
      /** Validity of S/MIME leaf certificates (at most validDays); serve renews a leaf renewBeforeDays before it ends, under the same domain CA and with the same key pair. */
      leafDays: z.number().int().min(1).max(3650).default(365),
      /** Key lifecycle (docs/lifecycle.md): the overlap between announcing next keys and switching to them. */
      overlapDays: z.number().int().min(0).max(365).default(7),
      /** serve announces a roll when a key expires within renewBeforeDays + overlapDays, and finishes it after the overlap. */
      autoRoll: z.boolean().default(false),
      /** Replaced private keys stay sealed in the store this long after a switch, so mail in flight to them still opens. */
      retainDays: z.number().int().min(0).max(3650).default(30),
      /** serve re-issues the S/MIME leaf under the domain CA this long before it expires. */
      renewBeforeDays: z.number().int().min(1).max(365).default(30),
      /** How often serve checks its domains' keys (renewal, autoRoll, retention, posting to directories). */
      checkIntervalSec: z.number().int().min(1).default(3600),
    })
    .prefault({}),
  http: httpSection,
  dns: dnsSection,
  ldap: ldapSection,
  smtp: smtpSection,
  federation: federationSection,
  policy: policySection,
  acme: acmeSection,
  demo: z
    .strictObject({
      /** The domain `serve` creates on first start; empty to create none. */
      domain: z.string().default('demo.mailmesh.test'),
    })
    .prefault({}),
  /** Enhanced WebMail for recipients without a key (docs/webmail.md). */
  webmail: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Public base URL of the HTTP face; the pages are under <baseUrl>/webmail/. Default: http.publicUrl, else the HTTP face's address. */
      baseUrl: z.string().url().optional(),
      language: z.enum(['en', 'de']).default('en'),
      expiryDays: z.number().int().min(1).max(3650).default(30),
      sessionSec: z.number().int().min(60).max(86400).default(900),
      maxAttempts: z.number().int().min(1).default(5),
      maxClientAttempts: z.number().int().min(1).default(20),
      lockoutSec: z.number().int().min(1).default(900),
      delayMs: z.number().int().min(0).default(1000),
      /** host:port where secure replies go; default the gateway's own SMTP listener. */
      replyServer: z.string().optional(),
      /** Registered mail for every WebMail message, not only those with `X-Mailmesh-Registered: yes`. */
      registered: z.boolean().default(false),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** Human-readable logs: auto = when stdout is a terminal. */
      pretty: z.enum(['auto', 'true', 'false']).default('auto'),
      /** Line format when not pretty: pino JSON, or JSON after an sd-daemon(3) `<N>` priority prefix for journald; auto = journal when started by systemd with stdout on the journal (JOURNAL_STREAM). */
      format: z.enum(['auto', 'json', 'journal']).default('auto'),
    })
    .prefault({}),
});

export type RawConfig = z.infer<typeof ConfigSchema>;
export type Config = RawConfig & {
  store: RawConfig['store'] & { url: string };
  masterKey: RawConfig['masterKey'] & { file: string };
  /** Where the file came from, if any. */
  source: string | null;
};

/** Short aliases kept for convenience; the canonical names work too. */
const ALIASES: Record<string, string> = { MAILMESH_MASTER_KEY: 'masterKey.value' };

function envName(path: string[]): string {
  return 'MAILMESH_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__');
}

/** Every leaf key of the schema, with its environment variable, for the README and `config print`. */
export type ValueKind = 'string' | 'number' | 'boolean' | 'list' | 'json';
export function configKeys(): { path: string; env: string; kind: ValueKind }[] {
  const out: { path: string; env: string; kind: ValueKind }[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string[]) => {
    for (const [k, v] of Object.entries(shape)) {
      let inner: z.ZodType = v;
      while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional || inner instanceof z.ZodPrefault) {
        inner = (inner as z.ZodDefault<z.ZodType>).unwrap();
      }
      if (inner instanceof z.ZodObject) walk(inner.shape as Record<string, z.ZodType>, [...prefix, k]);
      else {
        const kind: ValueKind =
          inner instanceof z.ZodRecord || (inner instanceof z.ZodArray && !(inner.element instanceof z.ZodString)) ? 'json'
          : inner instanceof z.ZodArray ? 'list' : inner instanceof z.ZodNumber ? 'number' : inner instanceof z.ZodBoolean ? 'boolean' : 'string';
        out.push({ path: [...prefix, k].join('.'), env: envName([...prefix, k]), kind });
      }
    }
  };
  walk(ConfigSchema.shape as unknown as Record<string, z.ZodType>, []);
  return out;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Environment strings take the type the key needs; lists are comma-separated. What does not convert is left for the schema to name. */
function envValue(text: string, kind: ValueKind): unknown {
  if (kind === 'number' && /^-?\d+(\.\d+)?$/.test(text.trim())) return Number(text);
  if (kind === 'boolean' && /^(true|false|1|0|yes|no)$/i.test(text.trim())) return /^(true|1|yes)$/i.test(text.trim());
  if (kind === 'list') return text.split(',').map((x) => x.trim()).filter(Boolean);
  if (kind === 'json') {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text; // the schema names the key and what it expected
    }
  }
  return text;
}

export function loadConfig(opts: { file?: string; env: NodeJS.ProcessEnv; cwd: string }): Config {
  const explicit = opts.file ?? opts.env.MAILMESH_CONFIG;
  const file = explicit ? resolve(opts.cwd, explicit) : resolve(opts.cwd, 'mailmesh.yaml');
  let raw: Record<string, unknown> = {};
  let source: string | null = null;
  if (existsSync(file)) {
    try {
      raw = (parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown> | null) ?? {};
    } catch (e) {
      throw new MailmeshError('CONFIG_INVALID', `${file}: ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new MailmeshError('CONFIG_INVALID', `${file}: not a mapping`);
    source = file;
  } else if (explicit) {
    throw new MailmeshError('CONFIG_INVALID', `${file}: no such file`);
  }
  const byEnv = new Map(configKeys().map((k) => [k.env, k]));
  for (const [name, path] of Object.entries(ALIASES)) byEnv.set(name, { path, env: name, kind: 'string' });
  for (const [name, value] of Object.entries(opts.env)) {
    // MAILMESH_CLUSTER_PASSPHRASE and MAILMESH_BACKUP_PASSPHRASE are read by `mailmesh cluster` and `backup`/`restore` (cli/cluster.ts), not settings.
    if (!name.startsWith('MAILMESH_') || ['MAILMESH_CONFIG', 'MAILMESH_CLUSTER_PASSPHRASE', 'MAILMESH_BACKUP_PASSPHRASE'].includes(name) || value === undefined) continue;
    const key = byEnv.get(name);
    if (!key) throw new MailmeshError('CONFIG_INVALID', `${name}: no such setting (see README "Configuration")`);
    setPath(raw, key.path.split('.'), envValue(value, key.kind));
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new MailmeshError('CONFIG_INVALID', (source ? `${source}: ` : '') + problems.join('; '));
  }
  const c = parsed.data;
  const dataDir = resolve(opts.cwd, c.dataDir);
  return {
    ...c,
    dataDir,
    store: { ...c.store, url: c.store.url ?? `sqlite:${join(dataDir, 'mailmesh.db')}` },
    masterKey: { ...c.masterKey, file: resolve(opts.cwd, c.masterKey.file ?? join(dataDir, 'master.key')) },
    source,
  };
}

/** The effective configuration with secrets masked, for `mailmesh config print`. */
export function maskedConfig(c: Config): Record<string, unknown> {
  const copy = structuredClone(c) as Record<string, unknown> & Config;
  if (copy.masterKey.value) copy.masterKey.value = '********';
  if (copy.federation.importToken) copy.federation.importToken = '********';
  if (copy.http.metricsToken) copy.http.metricsToken = '********';
  for (const k of copy.dns.transfer.tsig) k.secret = '********';
  copy.store.url = copy.store.url.replace(/\/\/([^@/]*)@/, '//********@');
  return copy;
}
