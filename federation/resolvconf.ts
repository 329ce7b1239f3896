import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * The system's resolvers, read as glibc's stub resolver reads them (resolv.conf(5)): the
 * `nameserver` lines of /etc/resolv.conf, at most MAXNS of them, in file order. A line whose
 * first character is `;` or `#` is a comment; the keyword must start the line; the address ends
 * at the first blank, `;` or `#`; an address that does not parse (a host name, garbage) is
 * skipped, as glibc does; every other keyword (`search`, `domain`, `options`, `sortlist`) is
 * ignored here. IPv4, IPv6 and scoped IPv6 (`fe80::1%eth0`, RFC 4007 §11) addresses are taken.
 * resolv.conf has no port syntax: every server is asked on port 53.
 */

export const RESOLV_CONF = '/etc/resolv.conf';
/** glibc's MAXNS (resolv.h): the servers after the third are not used. */
export const MAXNS = 3;
/** resolv.conf(5): "If there are no nameserver lines in the file, the default is to use the name server on the local machine." */
export const LOCAL_DEFAULT = '127.0.0.1';

/** The addresses of the `nameserver` lines (at most MAXNS). */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (out.length >= MAXNS) break;
    const m = /^nameserver[ \t]+([^ \t\r;#]+)/.exec(line);
    if (!m) continue;
    const address = m[1]!;
    // A zone index names an interface (RFC 4007 §11): the address before it must be IPv6.
    const bare = address.replace(/%[^%]+$/, '');
    if (net.isIPv4(address) || net.isIPv6(bare)) out.push(address);
  }
  return out;
}

/** An address as stubResolver takes it: `v4:port`, `[v6]:port`. */
function server(address: string, port: number): string {
  return net.isIPv4(address) ? `${address}:${port}` : `[${address}]:${port}`;
}

export interface SystemResolvers {
  /** For stubResolver (federation/dns.ts). */
  servers: string[];
  /** What was read, for the log at start: the file's servers, or why the local default is used. */
  detail: string;
  /** True when the file named no usable server and the local default stands in (as glibc). */
  fallback: boolean;
}

/** The servers of a resolv.conf file; a missing or empty file gives the local default, as glibc does. */
export function systemResolvers(path = RESOLV_CONF, port = 53): SystemResolvers {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return { servers: [server(LOCAL_DEFAULT, port)], detail: `${path} unreadable (${why}): using ${LOCAL_DEFAULT} as glibc does`, fallback: true };
  }
  const found = parseResolvConf(text);
  if (found.length === 0) return { servers: [server(LOCAL_DEFAULT, port)], detail: `${path} names no nameserver: using ${LOCAL_DEFAULT} as glibc does`, fallback: true };
  return { servers: found.map((a) => server(a, port)), detail: `${path}: ${found.join(', ')}`, fallback: false };
}

/**
 * `federation.resolvers` made concrete: an empty list means the system's, and each `system`
 * entry stands for the servers of `resolvConf` in its place. `system` is undefined when the
 * list names only explicit servers.
 */
export function resolversFor(configured: string[], resolvConf = RESOLV_CONF, port = 53): { servers: string[]; system?: SystemResolvers } {
  const list = configured.length === 0 ? ['system'] : configured;
  if (!list.includes('system')) return { servers: list };
  const system = systemResolvers(resolvConf, port);
  return { servers: list.flatMap((s) => (s === 'system' ? system.servers : [s])), system };
}
