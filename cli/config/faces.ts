import { z } from 'zod';
import { TSIG_ALGORITHMS } from '../../directory/dns/tsig.js';

/** The configuration sections of the listening faces: http, dns, ldap and smtp (cli/config.ts assembles the schema). */
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

/**
 * `http.publicUrl`: the absolute http(s) URL under which the world reaches the HTTP face (a
 * reverse proxy, a DNS name); no query, fragment or credentials; a trailing slash is trimmed.
 */
const publicUrl = z.string().transform((v, ctx) => {
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    u = undefined;
  }
  const why = !u ? 'an absolute URL' : !['http:', 'https:'].includes(u.protocol) ? 'an http: or https: URL' : u.username || u.password ? 'a URL without credentials' : v.includes('?') || v.includes('#') ? 'a URL without query or fragment' : undefined;
  if (why) {
    ctx.addIssue({ code: 'custom', message: `expected ${why}, like https://keys.example.org` });
    return z.NEVER;
  }
  return u!.href.replace(/\/+$/, '');
});

/** The directory's HTTP face (docs/http.md). */
export const httpSection = hostPort(8080)
  .extend({
    /** The URL published for this face (TXT dir=, S/MIME CRL URLs, WebMail links); unset: http(s)://<host>:<port>. */
    publicUrl: publicUrl.optional(),
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
    /** When set, GET /metrics needs `Authorization: Bearer <metricsToken>` (docs/observability.md). */
    metricsToken: z.string().min(16).optional(),
  })
  .prefault({});

/** The directory's authoritative DNS (docs/dns.md). */
export const dnsSection = hostPort(5300)
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
  .prefault({});

/** The read-only LDAP face (docs/ldap.md). */
export const ldapSection = hostPort(1389)
  .extend({
    base: z.string().default('dc=mailmesh'),
    sizeLimit: z.number().int().min(1).default(100),
    timeLimitSec: z.number().int().min(1).default(10),
    ...edgeKeys({ maxConnections: 1000, maxConnectionsPerAddress: 50, idleTimeoutSec: 120 }),
  })
  .prefault({});

/** The queue-less SMTP gateway (docs/smtp.md "Configuration"). */
export const smtpSection = hostPort(2525)
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
    /** SIGTERM: a message in DATA gets this long to finish, other sessions get 421 at once (docs/operations.md). */
    drainSec: z.number().int().min(1).max(3600).default(30),
  })
  .prefault({});
