import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { MailmeshError } from '../directory/errors.js';
import { TYPE } from '../directory/dnswire.js';
import { lookupRecords, type Resolver } from './dns.js';
import type { Fetch } from './web.js';

/**
 * Fetches to hosts a remote caller chooses (the well-known proof of a join): the host name is
 * resolved through the federation resolvers, every address is checked, and the connection goes
 * to the checked address itself (no second resolution, so no DNS rebinding between check and
 * connect). Redirects are never followed. Private, loopback, link-local and other special-purpose
 * addresses (RFC 6890 and its IANA registries) are refused with ADDRESS_FORBIDDEN unless allowed.
 */

/** RFC 6890 §2.2.2 and the IANA IPv4 Special-Purpose Address Registry, plus multicast (RFC 5771) and 240/4. */
const V4 = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const;
/**
 * RFC 6890 §2.2.3 and the IANA IPv6 registry: the IPv4-compatible ::/96 (RFC 4291 §2.5.5.1, with
 * :: and ::1), local-use NAT64 64:ff9b:1::/48 (RFC 8215), discard, 2001::/23, documentation, 6to4,
 * ULA fc00::/7, link-local fe80::/10, site-local, multicast.
 */
const V6 = [
  ['::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const;

const special = new BlockList();
for (const [a, p] of V4) special.addSubnet(a, p, 'ipv4');
for (const [a, p] of V6) special.addSubnet(a, p, 'ipv6');

/** The IPv4 address inside an IPv4-mapped (RFC 4291 §2.5.5.2) or NAT64 well-known-prefix (RFC 6052 §2.1) IPv6 address. */
function embeddedV4(v6: string): string | undefined {
  const m = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(v6);
  if (!m) return undefined;
  if (m[1]) return m[1];
  const hi = parseInt(m[2]!, 16);
  const lo = parseInt(m[3]!, 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** Is the address private, loopback, link-local or otherwise not a public unicast address? */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return special.check(address, 'ipv4');
  if (family !== 6) return true;
  const v4 = embeddedV4(address);
  if (v4) return special.check(v4, 'ipv4');
  return special.check(address, 'ipv6');
}

/** RFC 1035 §3.4.1 A and RFC 3596 §2.2 AAAA records of `host` (an IP literal is itself). */
async function addressesOf(resolver: Resolver, host: string): Promise<{ address: string; family: 4 | 6 }[]> {
  const literal = isIP(host);
  if (literal) return [{ address: host, family: literal as 4 | 6 }];
  const [a, aaaa] = await Promise.all([lookupRecords(resolver, host, TYPE.A), lookupRecords(resolver, host, TYPE.AAAA)]);
  const v4 = a.filter((r) => r.rdata.length === 4).map((r) => ({ address: [...r.rdata].join('.'), family: 4 as const }));
  // The WHATWG URL parser writes an IPv6 address in its RFC 5952 form (compressed, lower case).
  const v6 = aaaa.filter((r) => r.rdata.length === 16).map((r) => ({ address: new URL(`http://[${(r.rdata.toString('hex').match(/.{4}/g) ?? []).join(':')}]`).hostname.slice(1, -1), family: 6 as const }));
  return [...v4, ...v6];
}

export interface GuardOptions {
  resolver: Resolver;
  /** federation.join.allowPrivateAddresses: allow the special-purpose addresses (tests, a private federation). */
  allowPrivateAddresses: boolean;
  /** Largest body read (default 1 MiB); a longer one is cut there (callers refuse it as too large). */
  maxBody?: number;
}

/** A `fetch` that checks where it connects (see the top of this file); GET, HEAD and small bodies. */
export function guardedFetch(o: GuardOptions): Fetch {
  const maxBody = o.maxBody ?? 1024 * 1024;
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const found = await addressesOf(o.resolver, host);
    if (found.length === 0) throw new MailmeshError('LOOKUP_UNAVAILABLE', `${host} has no address`);
    const refused = found.filter((a) => isSpecialAddress(a.address));
    if (refused.length && !o.allowPrivateAddresses) {
      throw new MailmeshError('ADDRESS_FORBIDDEN', `${host} resolves to ${refused.map((a) => a.address).join(', ')} (federation.join.allowPrivateAddresses is false)`);
    }
    const target = found[0]!;
    // net.connect asks this instead of the system resolver: the address just checked, nothing else.
    const lookup: LookupFunction = (_name, options, cb) => {
      if (options.all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [target]);
      else cb(null, target.address, target.family);
    };
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      const req = mod.request(url, { method: init.method ?? 'GET', headers, lookup, agent: false, signal: init.signal ?? undefined, servername: isIP(host) ? undefined : host }, (res) => {
        if (res.socket.remoteAddress && res.socket.remoteAddress.replace(/^::ffff:/, '') !== target.address.replace(/^::ffff:/, '')) {
          res.destroy();
          return reject(new MailmeshError('ADDRESS_FORBIDDEN', `${host}: connected to ${res.socket.remoteAddress}, not ${target.address}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size <= maxBody + 1) chunks.push(d);
          if (size > maxBody) res.destroy();
        });
        const done = () => {
          const status = res.statusCode ?? 502;
          const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
          // RFC 9110 §15.4: a redirect is answered as it is; the caller treats it as a failure.
          try {
            resolve(new Response(body, { status, headers: Object.entries(res.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)] as [string, string]])) }));
          } catch (e) {
            reject(e as Error);
          }
        };
        res.on('end', done);
        res.on('close', () => (size > maxBody ? done() : undefined));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(typeof init.body === 'string' ? init.body : undefined);
    });
  };
}
