import { promises as dnsPromises } from 'node:dns';
import type { Domain } from '../../directory/domain.js';
import { parseDomain } from '../../directory/domain.js';
import { MailmeshError } from '../errors.js';
import type { TlsPolicy } from './client.js';

/** inbound: to one of our domains (→ the internal mail server); outbound: from an internal network (→ the world). */
export type Direction = 'inbound' | 'outbound';

/** Where a transaction goes: one server, tried in the order given when there are several (MX preference). */
export interface NextHop {
  host: string;
  port: number;
  /** STARTTLS policy for this hop (client.ts TlsPolicy); default `may`. */
  tls?: TlsPolicy;
  /** CA certificates (PEM) for `tls: verify`; default Node's store. */
  ca?: string | string[];
  /** Name the certificate must carry for `tls: verify`; default `host`. */
  servername?: string;
}

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** `mx(domain)` as node:dns answers it; ENOTFOUND/ENODATA are read as "no such domain" / "no MX". */
export type MxResolver = (domain: string) => Promise<MxRecord[]>;

/** A predicate over client addresses from CIDR blocks and single addresses (directory/edge.ts). */
export { ipMatcher } from '../../directory/edge.js';

/** A predicate over domains from a list (canonicalised with parseDomain; `.example.org` also matches subdomains). */
export function domainMatcher(domains: readonly string[]): (domain: Domain) => boolean {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const d of domains) {
    if (d.startsWith('.')) suffixes.push('.' + parseDomain(d.slice(1)));
    else exact.add(parseDomain(d));
  }
  return (domain) => exact.has(domain) || suffixes.some((s) => domain.endsWith(s));
}

export interface RouterOptions {
  /** The internal mail server that inbound mail goes to. */
  internal: NextHop;
  /** Send all outbound mail here instead of to the recipient domain's MX. */
  smarthost?: NextHop;
  /** MX lookup; default node:dns resolveMx. */
  mx?: MxResolver;
  /** Port of MX hosts (25; tests use others). */
  mxPort?: number;
  /** STARTTLS policy towards MX hosts; default `may`. */
  mxTls?: TlsPolicy;
}

/**
 * The usual routing: inbound → `internal`; outbound → `smarthost`, or the recipient domain's
 * MX hosts by preference (RFC 5321 §5.1: no MX means the domain itself is the host;
 * RFC 7505: a single "." MX means the domain takes no mail, which is an empty route).
 * A DNS failure other than "no such domain"/"no MX" throws NEXT_HOP_UNAVAILABLE.
 */
export function createRouter(opts: RouterOptions): (recipient: Domain, direction: Direction) => Promise<NextHop[]> {
  const mx = opts.mx ?? ((d: string) => dnsPromises.resolveMx(d));
  return async (domain, direction) => {
    if (direction === 'inbound') return [opts.internal];
    if (opts.smarthost) return [opts.smarthost];
    let records: MxRecord[];
    try {
      records = await mx(domain);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOTFOUND') return [];
      if (code !== 'ENODATA') throw new MailmeshError('NEXT_HOP_UNAVAILABLE', `MX lookup for ${domain}: ${code ?? String(e)}`, { cause: e });
      records = [];
    }
    if (records.length === 0) records = [{ exchange: domain, priority: 0 }];
    if (records.length === 1 && records[0]!.exchange.replace(/\.$/, '') === '') return [];
    // RFC 5321 §5.1: lower preference first; equal preferences in random order (we keep DNS order).
    return [...records]
      .sort((a, b) => a.priority - b.priority)
      .map((r) => ({ host: r.exchange.replace(/\.$/, ''), port: opts.mxPort ?? 25, tls: opts.mxTls ?? 'may' }));
  };
}
