import { isIP, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Directory } from '../directory/directory.js';
import { logOrigin } from '../directory/tlog/log.js';
import { edgeLimits } from '../directory/edge.js';
import { createHttpServer } from '../directory/http/http.js';
import { packageVersion } from '../directory/http/openapi.js';
import { createDnsServer, type ZoneOptions } from '../directory/dns/dns.js';
import { LdapServer } from '../directory/ldap/ldap.js';
import { runWhileLeader } from '../directory/lease.js';
import { loadMasterKey } from '../directory/seal.js';
import { upgradePlan } from '../directory/store/migrate.js';
import { openStore } from '../directory/store/open.js';
import { gatewayOptions } from '../gateway/smtp/settings.js';
import { createGateway } from '../gateway/smtp/smtp.js';
import { collectGatewayStats } from '../gateway/metrics.js';
import { MailPolicy } from '../gateway/gateway.js';
import { WebmailKeys } from '../gateway/webmail/crypto.js';
import { domainKeyOf } from '../gateway/webmail/receipt.js';
import { Webmail } from '../gateway/webmail/webmail.js';
import { formLimit } from '../gateway/webmail/form.js';
import { Metrics } from '../directory/metrics.js';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { MailmeshError } from '../directory/errors.js';
import { isLoopback, stubResolver } from '../federation/dns.js';
import { resolversFor } from '../federation/resolvconf.js';
import { StoreDiscoveryCache } from '../federation/cache.js';
import { Discovery } from '../federation/discovery.js';
import { importHandler, loadAnchors } from '../federation/importer.js';
import { JoinService } from '../federation/join.js';
import { KeyLifecycle, watchKeyExpiry } from '../federation/lifecycle.js';
import { Mirror } from '../federation/mirror.js';
import { FilePinStore, StorePinStore, type PinStore } from '../federation/pins.js';
import type { DomainSources } from '../federation/proof.js';
import { baseFor } from '../federation/web.js';
import { TlsHolder, type TlsKeyPair } from '../directory/tls.js';
import { tlsMaterial } from '../directory/http/tls.js';
import { AcmeCertificates, AcmeChallenges } from './acme.js';
import type { Config } from './config.js';
import { migrateAtStart } from './upgrade.js';
import { closeAll, listening, reload, type Reloadable } from './supervise.js';

/** The composition root: the only place that wires stores, the directory and its faces. */
export async function openDirectory(c: Config, opts: { createKey: boolean; directoryUrl?: () => string }): Promise<Directory> {
  // Read (or create) the key before the store, so a wrong key touches nothing.
  const masterKey = loadMasterKey({ value: c.masterKey.value, file: c.masterKey.file, create: opts.createKey });
  const store = await openStore(c.store.url, { redisPrefix: c.store.redisPrefix });
  // New S/MIME leaves name the HTTP face's CRL of their domain CA (RFC 5280 §4.2.1.13; docs/lifecycle.md "Revoke").
  const base = opts.directoryUrl ?? (() => zoneOptions(c).directoryUrl);
  try {
    await upgradePlan(store); // a store newer than this code is refused (STORE_SCHEMA_NEWER) before anything is written
    // The transparency log's origin is the federation zone's (docs/transparency.md "Origin").
    return await Directory.open(store, masterKey, { keys: c.keys, crlUrl: (d) => `${base()}/v1/domains/${d}/crl`, log: { origin: logOrigin(c.dns.zone) } });
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** Where federation reads a domain's own statements: resolvers and web base from `federation` (docs/federation.md). */
export function federationSources(c: Config, clock: () => Date = () => new Date()): DomainSources {
  const f = c.federation;
  const { servers } = resolversFor(f.resolvers, f.resolvConf);
  return { resolver: stubResolver(servers, { timeoutMs: f.dnsTimeoutMs, dnssec: f.dnssec }), wellKnownBase: baseFor(f.wellKnownBase), clock, timeoutMs: f.dnsTimeoutMs };
}

/** Pins: in `federation.pinsFile` when set, else in the store (shared by every node of a cluster). */
export function pinStoreFor(c: Config, directory: Directory): PinStore {
  return c.federation.pinsFile ? new FilePinStore(c.federation.pinsFile) : new StorePinStore(directory.store);
}

/**
 * The discovery resolver of a gateway: local and imported records of its store first, then the
 * sources; pins per pinStoreFor. Its cache is in the store when that is shared (Redis: every node
 * of a cluster sees one cache), else in memory.
 */
export function discoveryFor(c: Config, directory: Directory, logger?: Logger): Discovery {
  const f = c.federation;
  return new Discovery({
    sources: federationSources(c, directory.clock),
    directories: f.directories,
    pins: pinStoreFor(c, directory),
    local: (d) => directory.findRecord(d, { unpublished: true }),
    cacheTtlMs: f.cacheTtlSec * 1000,
    negativeTtlMs: f.negativeTtlSec * 1000,
    staleMaxMs: f.staleMaxSec * 1000,
    cache: directory.store.kind === 'redis' ? new StoreDiscoveryCache(directory.store) : undefined,
    logger,
    dnssec: f.dnssec,
    // Keys a pin moved away from still sign validly as long as their domain keeps them (keys.retainDays).
    retainMs: c.keys.retainDays * 86_400_000,
  });
}

/** Addresses that name no one place the world can reach: a wildcard or loopback. */
const WILDCARD = ['0.0.0.0', '::', '0:0:0:0:0:0:0:0'];
const unreachable = (host: string) => WILDCARD.includes(host) || host === 'localhost' || (isIP(host) !== 0 && isLoopback(host));

/**
 * Why the published directory URL will not do, when it will not: the HTTP face listens on a
 * wildcard or loopback address, `http.publicUrl` is unset, and something hands the URL out
 * (federation directories or mirrors, member domains in the DNS face, WebMail links).
 */
export function publicUrlWarning(c: Config): string | undefined {
  if (!c.http.enabled || c.http.publicUrl || !unreachable(c.http.host)) return undefined;
  const f = c.federation;
  const uses = f.directories.length > 0 || f.mirror.length > 0 || (c.dns.enabled && c.dns.authoritativeFor.length > 0) || c.webmail.enabled;
  return uses ? `http.publicUrl is unset and http.host ${c.http.host} is not an address others can reach: TXT dir=, CRL URLs and WebMail links name it` : undefined;
}

/** The zone settings of the DNS face and of `zone export`; the pin's dir= URL is http.publicUrl, else the HTTP face's address. */
export function zoneOptions(c: Config, httpAddress?: string): ZoneOptions {
  const scheme = c.http.tls.cert || c.http.tls.selfSigned ? 'https' : 'http';
  const wildcard = WILDCARD.includes(c.dns.host);
  return {
    zone: c.dns.zone,
    ttl: c.dns.ttl,
    hostmaster: c.dns.hostmaster,
    nameservers: c.dns.nameservers,
    authoritativeFor: c.dns.authoritativeFor,
    nameserverAddresses: c.dns.nameserverAddresses.length || wildcard || isIP(c.dns.host) === 0 ? c.dns.nameserverAddresses : [c.dns.host],
    directoryUrl: c.http.publicUrl ?? `${scheme}://${httpAddress ?? hostPort({ address: c.http.host, port: c.http.port, family: isIP(c.http.host) === 6 ? 'IPv6' : 'IPv4' })}`,
  };
}

export interface Running {
  directory: Directory;
  http?: FastifyInstance;
  /** host:port of each listener that is up. */
  addresses: Record<string, string>;
  /** The TLS material of HTTPS and STARTTLS: `set` (SIGHUP, ACME) takes effect for new handshakes. */
  tls: { http?: TlsHolder; smtp?: TlsHolder };
  /** SIGHUP: TLS files and the policy of `c` (cli/supervise.ts reload); throws, changing nothing, when invalid. */
  reload(c: Config): Promise<void>;
  /** The ACME certificates (docs/acme.md), when acme.enabled. */
  acme?: AcmeCertificates;
  /** Stops every face (SMTP drains first); rejects when a step failed. */
  close(): Promise<void>;
}

function hostPort(a: AddressInfo | string | null): string {
  if (!a || typeof a === 'string') return String(a);
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Enhanced WebMail (docs/webmail.md): its keys live in the store, sealed under the master key. */
async function webmailFor(c: Config, directory: Directory, directoryUrl: () => string): Promise<Webmail> {
  const w = c.webmail;
  const masterKey = loadMasterKey({ value: c.masterKey.value, file: c.masterKey.file, create: false });
  const [host, port] = (w.replyServer ?? `${c.smtp.host}:${c.smtp.port}`).split(/:(?=\d+$)/);
  return new Webmail({
    ...w, baseUrl: w.baseUrl ?? directoryUrl, replyServer: { host: host!, port: Number(port) }, keepSubject: c.policy.keepSubject, adminToken: c.federation.importToken,
    receiptKey: domainKeyOf(directory), store: directory.store, keys: await WebmailKeys.open(directory.store, masterKey), name: c.smtp.name ?? hostname(), clock: directory.clock,
  });
}

/**
 * ACME (docs/acme.md): the challenges the faces answer and the certificates, handed to `holders`;
 * undefined when acme.enabled is false. The names default to the host of http.publicUrl.
 */
function acmeFor(c: Config, directory: Directory, log: Logger, onCertificate: (pair: TlsKeyPair) => void) {
  if (!c.acme.enabled) return undefined;
  const https = Boolean(c.http.tls.cert || c.http.tls.selfSigned);
  if (!c.http.enabled || (c.acme.challenge === 'tls-alpn-01' && !https)) {
    throw new MailmeshError('CONFIG_INVALID', `acme.challenge ${c.acme.challenge} is answered by the ${c.acme.challenge === 'http-01' ? 'HTTP face (http.enabled)' : 'HTTPS face (http.enabled with http.tls.selfSigned or http.tls.cert)'}`);
  }
  // RFC 8555 §8.3: the CA asks http-01 over plain HTTP (port 80); an HTTPS face cannot answer it.
  if (c.acme.challenge === 'http-01' && https) throw new MailmeshError('CONFIG_INVALID', 'acme.challenge http-01 is asked over plain HTTP, and the HTTP face speaks TLS (http.tls): use tls-alpn-01');
  const publicUrl = c.http.publicUrl;
  const domains = c.acme.domains.length ? c.acme.domains : publicUrl ? [new URL(publicUrl).hostname] : [];
  const challenges = new AcmeChallenges();
  const certs = new AcmeCertificates({
    config: { ...c.acme, domains }, store: directory.store, challenges, logger: log.child({ face: 'acme' }), clock: directory.clock,
    masterKey: loadMasterKey({ value: c.masterKey.value, file: c.masterKey.file, create: false }), onCertificate,
  });
  return {
    challenges,
    certs,
    /** Once the listeners are up: every node serves the store's certificate and follows its renewals; the lease holder orders. */
    async start(leased: (name: string, start: () => () => void) => void): Promise<() => Promise<void>> {
      await certs.refresh();
      const unfollow = certs.follow();
      leased('acme', () => certs.startOrdering());
      return async () => unfollow();
    },
  };
}

/** What the HTTP face's federation routes call: joins (when accepted) and third-party imports. */
function federationHandlers(c: Config, directory: Directory, joins: JoinService | undefined) {
  const f = c.federation;
  const disabled = async (): Promise<never> => {
    throw new MailmeshError('FEDERATION_DISABLED', 'federation.acceptJoins is false');
  };
  return {
    join: joins ? (b: unknown) => joins.join(b) : disabled,
    leave: joins ? (d: string, b: unknown) => joins.leave(d, b) : disabled,
    veto: joins ? (d: string, b: unknown) => joins.veto(d, b) : disabled,
    importKeys: importHandler(directory, { token: f.importToken, trustAnchors: loadAnchors(f.trustAnchors), publish: f.publishImported }),
  };
}

/** `mailmesh serve`: the store, the demo domain on first start, and every enabled face. */
/** How long a node holds a periodic-work lease without renewing it: the take-over time when it dies. */
const LEASE_TTL_SEC = 30;

export async function serve(c: Config, log: Logger): Promise<Running> {
  // The HTTP face's URL once it listens (port 0 picks one); until then the configured one.
  let directoryUrl = zoneOptions(c).directoryUrl;
  await migrateAtStart(c, log); // refuses a store newer than this code; migrates an older one (docs/backup.md)
  const directory = await openDirectory(c, { createKey: true, directoryUrl: () => directoryUrl });
  const closers: (() => Promise<void>)[] = [() => directory.store.close()];
  const reloadable: Reloadable = {};
  const running: Running = {
    directory,
    addresses: {},
    tls: reloadable,
    reload: (next) => reload(reloadable, next, log),
    close: () => closeAll(closers.reverse(), log),
  };
  const metrics = new Metrics({ runtime: { version: packageVersion() } });
  try {
    // ACME certificates go into the holders of HTTPS and STARTTLS, as SIGHUP's files do.
    const acme = acmeFor(c, directory, log, (pair) => [reloadable.http, reloadable.smtp].forEach((h) => h?.set(pair)));
    if (c.demo.domain && !(await directory.findRecord(c.demo.domain))) {
      const r = await directory.addDomain(c.demo.domain);
      log.info({ domain: r.domain, openpgp: r.keys.openpgp?.fingerprint, smime: r.keys.smime?.fingerprint }, 'demo domain created');
    }
    const f = c.federation;
    const fedLog = log.child({ face: 'federation' });
    const joins = f.acceptJoins ? new JoinService({ directory, sources: federationSources(c, directory.clock), logger: fedLog, allowPrivateAddresses: f.join.allowPrivateAddresses, recoveryHoldMs: f.recoveryHoldSec * 1000 }) : undefined;
    const federation = federationHandlers(c, directory, joins);
    // Periodic work runs on the node that holds its store lease (directory/lease.ts, docs/cluster.md).
    const owner = `${hostname()}:${process.pid}:${randomUUID()}`;
    const leased = (name: string, start: () => () => void) => {
      const l = runWhileLeader({ store: directory.store, name, owner, ttlSec: LEASE_TTL_SEC, start, onError: (err) => fedLog.warn({ err, lease: name }, 'lease renewal failed') });
      closers.push(() => l.stop());
    };
    if (joins && f.reverifySec > 0) leased('reverify', () => joins.startReverify(f.reverifySec * 1000, metrics));
    for (const url of f.mirror) leased(`mirror:${url}`, () => new Mirror(url, { directory, logger: fedLog }).start(f.mirrorIntervalSec * 1000, metrics));
    // The expiry gauge of our keys, on every node (docs/lifecycle.md).
    const unwatch = await watchKeyExpiry(directory, metrics);
    closers.push(async () => unwatch());
    const webmail = c.webmail.enabled ? await webmailFor(c, directory, () => directoryUrl) : undefined;
    if (c.http.enabled) {
      const pair = await tlsMaterial(c.http.tls, c.http.host);
      reloadable.http = pair && new TlsHolder(pair);
      const http = await createHttpServer({
        tls: reloadable.http,
        directory, logger: log.child({ face: 'http' }), federation, metrics,
        config: { ...c.http, limits: edgeLimits(c.http), timeouts: { headersMs: c.http.headersTimeoutSec * 1000, requestMs: c.http.requestTimeoutSec * 1000, idleMs: c.http.idleTimeoutSec * 1000 } },
        // On Redis the nodes of a cluster count a client's requests together.
        rateCounters: directory.store.kind === 'redis' ? directory.store : undefined,
        webmail: webmail && { handlers: webmail.handlers(), register: (app) => webmail.register(app, c.smtp.maxMessageBytes), bodyLimit: formLimit(c.smtp.maxMessageBytes) },
        acme: acme && { httpAnswer: (token) => acme.challenges.httpAnswer(token), tlsHooks: c.acme.challenge === 'tls-alpn-01' ? acme.challenges.tlsHooks() : undefined },
      });
      await listening('http', c.http.host, c.http.port, () => http.listen({ host: c.http.host, port: c.http.port }));
      closers.push(() => http.close());
      running.http = http;
      running.addresses.http = hostPort(http.server.address());
      directoryUrl = zoneOptions(c, running.addresses.http).directoryUrl;
    }
    if (c.dns.enabled) {
      const d = c.dns;
      const dns = await createDnsServer({
        directory, ...zoneOptions(c, running.addresses.http), logger: log.child({ face: 'dns' }), metrics, rrl: d.rrl, transfer: d.transfer,
        tcp: {
          maxPendingBytes: d.maxPendingBytes, maxTotalPendingBytes: d.maxTotalPendingBytes, maxConnections: d.maxTcpConnections, maxConnectionsPerAddress: d.maxTcpConnectionsPerClient,
          idleTimeoutMs: d.tcpIdleTimeoutSec * 1000, drainTimeoutMs: d.tcpDrainTimeoutSec * 1000, maxLifetimeMs: d.tcpLifetimeSec * 1000,
        },
      });
      closers.push(() => dns.close());
      const a = await listening('dns', c.dns.host, c.dns.port, () => dns.listen(c.dns.host, c.dns.port));
      running.addresses.dns = hostPort({ address: a.host, port: a.port, family: isIP(a.host) === 6 ? 'IPv6' : 'IPv4' });
    }
    if (c.ldap.enabled) {
      const ldap = await LdapServer.create({
        directory, base: c.ldap.base, sizeLimit: c.ldap.sizeLimit, timeLimitSec: c.ldap.timeLimitSec, logger: log.child({ face: 'ldap' }),
        metrics, limits: edgeLimits(c.ldap), idleTimeoutMs: c.ldap.idleTimeoutSec * 1000,
      });
      closers.push(() => ldap.close());
      running.addresses.ldap = hostPort(await listening('ldap', c.ldap.host, c.ldap.port, () => ldap.listen(c.ldap.port, c.ldap.host)));
    }
    if (c.smtp.enabled) {
      const smtpLog = log.child({ face: 'smtp' });
      const base = gatewayOptions(c.smtp);
      const mail = await MailPolicy.create({
        directory,
        discovery: discoveryFor(c, directory, smtpLog),
        policy: c.policy,
        authservId: base.name ?? hostname(),
        extraDomains: c.smtp.ourDomains,
        metrics,
        logger: smtpLog,
        webmail,
      });
      closers.push(async () => mail.close());
      reloadable.policy = mail;
      const latency = metrics.histogram('mailmesh_next_hop_seconds', 'Next-hop latency from the end of DATA to its final reply', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
      const smtp = await createGateway({ ...base, ...mail.gatewayHooks(), observeNextHopLatency: (ms) => latency.observe(ms / 1000), logger: smtpLog, metrics });
      collectGatewayStats(metrics, smtp.stats);
      closers.push(() => smtp.close());
      reloadable.smtp = smtp.tls;
      running.addresses.smtp = hostPort(await listening('smtp', c.smtp.host, c.smtp.port, () => smtp.listen()));
    }
    // Key lifecycle (docs/lifecycle.md): renewals, autoRoll, retention, posting to directories; started
    // once the HTTP face listens, so that new leaves name its CRL URL.
    const lifecycle = new KeyLifecycle({ directory, keys: c.keys, directories: f.directories, sources: federationSources(c, directory.clock), logger: log.child({ face: 'lifecycle' }), metrics });
    leased('lifecycle', () => lifecycle.start(c.keys.checkIntervalSec * 1000));
    if (acme) closers.push(await acme.start(leased));
    running.acme = acme?.certs;
    logNetworkSettings(c, log);
    log.info({ addresses: running.addresses, store: directory.store.kind }, 'mailmesh is serving');
    return running;
  } catch (e) {
    await running.close().catch(() => {}); // logged step by step; the cause is `e`
    throw e;
  }
}

/** At serve start: where federation lookups go (docs/federation.md "Resolvers"), and a directory URL nobody can reach. */
function logNetworkSettings(c: Config, log: Logger): void {
  const system = resolversFor(c.federation.resolvers, c.federation.resolvConf).system;
  if (system) (system.fallback ? log.warn.bind(log) : log.info.bind(log))({ face: 'federation', resolvers: system.servers }, `system resolvers: ${system.detail}`);
  const warning = publicUrlWarning(c);
  if (warning) log.warn({ face: 'http' }, warning);
}
