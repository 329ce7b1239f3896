import { z } from 'zod';

/** The `federation` section (cli/config.ts assembles the schema): join, discovery, third-party keys, peering (docs/federation.md "Configuration"). */
export const federationSection = z
  .strictObject({
    /** DNS resolvers (IP address, ip:port or [v6]:port) for _mailmesh proofs and discovery; empty or `system`: the nameservers of resolvConf. */
    resolvers: z.array(z.string()).default([]),
    /** The resolv.conf(5) file whose `nameserver` lines are the system's resolvers (federation/resolvconf.ts). */
    resolvConf: z.string().min(1).default('/etc/resolv.conf'),
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
  .prefault({});
