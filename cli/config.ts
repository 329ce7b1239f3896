import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { TSIG_ALGORITHMS } from '../directory/dns/tsig.js';
import { MailmeshError } from '../directory/errors.js';

/**
 * The one configuration schema (README "Configuration" lists every key). A YAML file
 * (`mailmesh.yaml`, optional) is read, then the environment overrides it: every key has a
 * variable MAILMESH_<SECTION>__<KEY> (camelCase → SNAKE_CASE, `__` between levels).
 */
const hostPort = (port: number) =>
  z.strictObject({
    enabled: z.boolean().default(true),
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(port),
  });

/**
 * What a network face bounds against hostile peers (directory/edge.ts, docs/security/edges.md):
 * the same keys in `ldap`, `http` and `smtp`, with the face's own defaults.
 */
const edgeKeys = (d: { maxConnections: number; maxConnectionsPerAddress: number; idleTimeoutSec: number }) => ({
  ...edgeTimeKeys(d),
  maxPendingBytes: z.number().int().min(64 * 1024).default(4 * 1024 * 1024),
});
/** SMTP has no maxPendingBytes: smtp-server reads no command while 16 KB of replies wait unsent. */
const edgeTimeKeys = (d: { maxConnections: number; maxConnectionsPerAddress: number; idleTimeoutSec: number }) => ({
  drainTimeoutSec: z.number().int().min(1).default(30),
  maxConnections: z.number().int().min(1).default(d.maxConnections),
  maxConnectionsPerAddress: z.number().int().min(0).default(d.maxConnectionsPerAddress),
  idleTimeoutSec: z.number().int().min(1).default(d.idleTimeoutSec),
  maxLifetimeSec: z.number().int().min(0).default(3600),
});

const MODES = ['auto', 'require'] as const;
const FALLBACKS = ['tls', 'reject', 'webmail'] as const;
const FORMATS = ['pgp-mime', 'smime'] as const;
const domainPolicy = z.strictObject({
  mode: z.enum(MODES).default('auto'),
  fallback: z.enum(FALLBACKS).default('tls'),
  format: z.enum(FORMATS).default('pgp-mime'),
});
/** A per-domain override: only what it sets differs from policy.default. */
const domainPolicyOverride = z.strictObject({ mode: z.enum(MODES).optional(), fallback: z.enum(FALLBACKS).optional(), format: z.enum(FORMATS).optional() });

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
  http: hostPort(8080)
    .extend({
      tls: z
        .strictObject({
          /** PEM certificate chain and key files; with neither, `selfSigned` decides. */
          cert: z.string().optional(),
          key: z.string().optional(),
          /** Serve HTTPS with a generated self-signed certificate when no cert is configured. */
          selfSigned: z.boolean().default(false),
        })
        .prefault({}),
      rateLimit: z
        .strictObject({
          /** Requests per client address and window; 0 turns the limit off. */
          max: z.number().int().min(0).default(600),
          windowSec: z.number().int().min(1).default(60),
        })
        .prefault({}),
      /** Reverse proxies (addresses, CIDRs) whose X-Forwarded-For names the client (rate limit, logs); default none. */
      trustProxy: z.array(z.string()).default([]),
      ...edgeKeys({ maxConnections: 1000, maxConnectionsPerAddress: 50, idleTimeoutSec: 5 }),
      headersTimeoutSec: z.number().int().min(1).default(10),
      requestTimeoutSec: z.number().int().min(1).default(30),
    })
    .prefault({}),
  dns: hostPort(5300)
    .extend({
      /** The federation zone this directory is authoritative for. */
      zone: z.string().default('dir.mailmesh.test'),
      /** Member domains for which it also answers RFC 7929/8162 owner names (…._openpgpkey.<domain>). */
      authoritativeFor: z.array(z.string()).default([]),
      ttl: z.number().int().min(0).max(86400).default(300),
      /** SOA RNAME as a mail address. */
      hostmaster: z.string().default('hostmaster@mailmesh.test'),
      /** Names of the zone's name servers (NS records); the first is the SOA MNAME. */
      nameservers: z.array(z.string()).default(['ns1.dir.mailmesh.test']),
      /** Addresses (A/AAAA) of the name servers that lie inside the zone; empty = dns.host unless it is a wildcard. */
      nameserverAddresses: z.array(z.string()).default([]),
      /** A TCP client whose unsent answers pass this many octets is not read until they drain (docs/security/dns.md). */
      maxPendingBytes: z.number().int().min(1024).default(4 * 1024 * 1024),
      /** Unsent answers of all TCP clients together; past it, a client that must catch up is not read either. */
      maxTotalPendingBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
      maxTcpConnections: z.number().int().min(1).default(1000),
      maxTcpConnectionsPerClient: z.number().int().min(1).default(10),
      tcpIdleTimeoutSec: z.number().int().min(1).default(10),
      /** A TCP client whose backlog does not drain within this is closed. */
      tcpDrainTimeoutSec: z.number().int().min(1).default(30),
      /** A TCP connection is closed this long after it was accepted. */
      tcpLifetimeSec: z.number().int().min(1).default(300),
      /** Response-rate limiting on UDP: a token bucket per client /24 (IPv4) or /56 (IPv6). */
      rrl: z
        .strictObject({
          /** 0 turns it off. */
          responsesPerSecond: z.number().min(0).default(100),
          burst: z.number().min(1).default(200),
          /** Every slip-th dropped answer goes out truncated (TC) so that real clients retry over TCP; 0: none. */
          slip: z.number().int().min(0).default(2),
          ipv4PrefixLength: z.number().int().min(0).max(32).default(24),
          ipv6PrefixLength: z.number().int().min(0).max(128).default(56),
          /** Addresses and CIDR blocks never limited. */
          exempt: z.array(z.string()).default([]),
        })
        .prefault({}),
      transfer: z
        .strictObject({
          /** Addresses and CIDR blocks that may transfer a zone (AXFR/IXFR) without TSIG. */
          allow: z.array(z.string()).default(['127.0.0.0/8', '::1/128']),
          /** TSIG keys (RFC 8945) of secondaries; a request signed with one may transfer from any address. */
          tsig: z
            .array(z.strictObject({ name: z.string().min(1), algorithm: z.enum(TSIG_ALGORITHMS).default('hmac-sha256'), secret: z.string().min(1) }))
            .default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  ldap: hostPort(1389)
    .extend({
      base: z.string().default('dc=mailmesh'),
      sizeLimit: z.number().int().min(1).default(100),
      timeLimitSec: z.number().int().min(1).default(10),
      ...edgeKeys({ maxConnections: 1000, maxConnectionsPerAddress: 50, idleTimeoutSec: 120 }),
    })
    .prefault({}),
  /** The queue-less SMTP gateway (docs/smtp.md "Configuration"). */
  smtp: hostPort(2525)
    .extend({
      /** Host name in the greeting, EHLO and Received; default the machine's. */
      name: z.string().optional(),
      /** Our mail domains (".example.org" includes subdomains): mail to them is inbound. */
      ourDomains: z.array(z.string()).default([]),
      /** Client networks (CIDR) whose mail to other domains is outbound; anything else may only send to ourDomains. */
      internalNetworks: z.array(z.string()).default(['127.0.0.0/8', '::1/128']),
      /** host:port of the internal mail server that inbound mail goes to. */
      internalServer: z.string().default('127.0.0.1:10025'),
      /** host:port that takes all outbound mail; unset = the recipient domain's MX. */
      smarthost: z.string().optional(),
      mxPort: z.number().int().min(1).max(65535).default(25),
      /** STARTTLS towards next hops: none | may | encrypt | verify (Postfix's levels). */
      nextHopTls: z.enum(['none', 'may', 'encrypt', 'verify']).default('may'),
      /** PEM files for STARTTLS; without them a self-signed certificate is made at start. */
      tlsCert: z.string().optional(),
      tlsKey: z.string().optional(),
      maxMessageBytes: z.number().int().min(1024).default(25 * 1024 * 1024),
      ...edgeTimeKeys({ maxConnections: 200, maxConnectionsPerAddress: 20, idleTimeoutSec: 300 }),
      /** RFC 5321 §4.5.3.1.4: a command line of more octets (CRLF included) gets 500 5.5.2. */
      maxCommandLineBytes: z.number().int().min(512).max(65536).default(512),
      maxRecipients: z.number().int().min(1).default(100),
      nextHopTimeoutSec: z.number().int().min(1).max(300).default(60),
      dataTimeoutSec: z.number().int().min(1).max(480).default(120),
      processTimeoutSec: z.number().int().min(1).max(300).default(60),
    })
    .prefault({}),
  /** Join, discovery, third-party keys, peering (docs/federation.md "Configuration"). */
  federation: z
    .strictObject({
      /** DNS resolvers (IP address, ip:port or [v6]:port) for _mailmesh proofs and discovery. */
      resolvers: z.array(z.string()).default(['127.0.0.1:53']),
      dnsTimeoutMs: z.number().int().min(100).max(30000).default(3000),
      /** off | trust-ad-from-loopback: a resolver on 127.0.0.0/8 or ::1 that sets AD has validated the answer with DNSSEC. */
      dnssec: z.enum(['off', 'trust-ad-from-loopback']).default('off'),
      /** Base URL of a member's web server for /.well-known/mailmesh/record and WKD; {domain} is replaced. */
      wellKnownBase: z.string().default('https://{domain}'),
      /** Accept POST /v1/domains (join) and DELETE (leave) on this directory's HTTP face. */
      acceptJoins: z.boolean().default(true),
      join: z
        .strictObject({
          /** Let join proofs fetch from private, loopback, link-local and other special-purpose addresses (tests, a private federation). */
          allowPrivateAddresses: z.boolean().default(false),
        })
        .prefault({}),
      /** Re-check joined records' proofs this often; 0: never. */
      reverifySec: z.number().int().min(0).default(3600),
      /** Directories a gateway asks (discovery) and joins: HTTP base URL, federation zone, its name servers. */
      directories: z
        .array(z.strictObject({ url: z.string(), zone: z.string().optional(), nameservers: z.array(z.string()).optional() }))
        .default([]),
      cacheTtlSec: z.number().int().min(0).default(300),
      negativeTtlSec: z.number().int().min(0).default(60),
      /** How long past its TTL a discovery answer is served while every source fails. */
      staleMaxSec: z.number().int().min(0).default(86400),
      /** A file for the key pins of peers (trust on first use, then rollover rules); default: in the store, shared by a cluster. */
      pinsFile: z.string().optional(),
      /** PEM files of CAs that imported S/MIME chains must lead to. */
      trustAnchors: z.array(z.string()).default([]),
      /** Publish imported third-party keys from this directory (default: kept for own use). */
      publishImported: z.boolean().default(false),
      /** Bearer token for POST /v1/imports; unset: the operation is disabled. */
      importToken: z.string().optional(),
      /** Directories to mirror (their HTTP base URLs); every signature is verified here. */
      mirror: z.array(z.string()).default([]),
      mirrorIntervalSec: z.number().int().min(1).default(300),
      /** A key recovery (new key with proof of domain control, no signature by the held key) waits this long, open to a veto. */
      recoveryHoldSec: z.number().int().min(0).default(259200),
    })
    .prefault({}),
  /** Routing policy of the gateway (gateway/policy.ts; README "Routing policy"). */
  policy: z
    .strictObject({
      default: domainPolicy.prefault({}),
      /** Overrides per destination domain (`.example.org`: its subdomains), e.g. { "beta.test": { mode: require } }. */
      domains: z.record(z.string(), domainPolicyOverride).default({}),
      trigger: z
        .strictObject({
          /** A Subject starting with this tag forces encryption ('' turns it off). */
          subjectTag: z.string().default('[secure]'),
          /** This header (any value but no/false/0) forces encryption ('' turns it off). */
          header: z.string().default('X-Mailmesh-Encrypt'),
        })
        .prefault({}),
      /** Keep the real Subject on the outer message instead of `...`. */
      keepSubject: z.boolean().default(false),
      inbound: z
        .strictObject({
          invalidSignature: z.enum(['reject', 'mark']).default('reject'),
          unknownSigner: z.enum(['reject', 'mark']).default('mark'),
          unsigned: z.enum(['reject', 'mark']).default('reject'),
          /** A valid signature by a domain that is not the From domain (docs/security/authenticity.md). */
          authorMismatch: z.enum(['reject', 'mark']).default('reject'),
          /** strict: the signer is the From domain; relaxed: or a parent domain of it. */
          authorAlignment: z.enum(['strict', 'relaxed']).default('strict'),
          /** A signature by a key that is none of the sender domain's current, next or retained keys (docs/lifecycle.md). */
          keyChanged: z.enum(['reject', 'mark']).default('reject'),
          /** A tunnel message encrypted to a key we do not hold: reject (554 5.7.5) or defer (451 4.7.5). */
          undecryptable: z.enum(['reject', 'defer']).default('reject'),
        })
        .prefault({}),
    })
    .prefault({}),
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
      /** Public base URL of the HTTP face; the pages are under <baseUrl>/webmail/. */
      baseUrl: z.string().url().default('http://127.0.0.1:8080'),
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
    // MAILMESH_CLUSTER_PASSPHRASE is read by `mailmesh cluster` (cli/cluster.ts), not a setting.
    if (!name.startsWith('MAILMESH_') || name === 'MAILMESH_CONFIG' || name === 'MAILMESH_CLUSTER_PASSPHRASE' || value === undefined) continue;
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
  for (const k of copy.dns.transfer.tsig) k.secret = '********';
  copy.store.url = copy.store.url.replace(/\/\/([^@/]*)@/, '//********@');
  return copy;
}
