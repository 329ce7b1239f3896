import net from 'node:net';
import type { Test } from 'tap';
import { Directory } from '../../../directory/directory.js';
import { createDnsServer, type DnsServer, type DnsServerOptions } from '../../../directory/dns/dns.js';
import { encodeHeader, encodeOpt, encodeQuestion, nameToWire, TYPE } from '../../../directory/dnswire.js';
import { run } from '../../helpers.js';

export { seeded } from '../../helpers.js';

export const ZONE = 'dir.mailmesh.test';

export function zoneOptions(extra: Partial<DnsServerOptions> = {}) {
  return {
    zone: ZONE,
    ttl: 300,
    hostmaster: 'hostmaster@mailmesh.test',
    nameservers: ['ns1.dir.mailmesh.test'],
    nameserverAddresses: ['127.0.0.1'],
    authoritativeFor: [] as string[],
    directoryUrl: 'http://127.0.0.1:8080',
    ...extra,
  };
}

export { memoryDirectory } from '../../helpers.js';

/** A DNS face on 127.0.0.1, UDP and TCP on one free port, closed when the test ends. */
export async function startDns(t: Test, directory: Directory, extra: Partial<DnsServerOptions> = {}): Promise<{ server: DnsServer; port: number }> {
  const server = await createDnsServer({ directory, ...zoneOptions(extra) });
  t.teardown(() => server.close());
  const { port } = await server.listen('127.0.0.1', 0);
  return { server, port };
}

export interface Dig {
  out: string;
  err: string;
  status?: string;
  flags: string[];
  /** Records in the answer section (or all records of a transfer), one presentation line each. */
  answers: string[];
  authority: string[];
  /** The transport the final answer came over, from kdig's ";; From …(UDP|TCP)". */
  via?: string;
}

/** Runs kdig (knot-dnsutils) against 127.0.0.1:port and parses what it printed. */
export async function kdig(port: number, args: string[]): Promise<Dig> {
  // kdig exits 1 when the server refuses (e.g. AXFR over UDP): keep its output all the same.
  const r = await run('kdig', ['@127.0.0.1', '-p', String(port), '+time=5', '+retry=0', ...args], { allowFail: true });
  if (r.code !== 0 && r.code !== 1) throw new Error(`kdig ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  const out = r.stdout.toString();
  const err = r.stderr;
  const section = (name: string) => {
    const at = out.indexOf(`;; ${name} SECTION:\n`);
    if (at < 0) return [];
    const body = out.slice(at).split('\n').slice(1);
    return body.slice(0, body.findIndex((l) => l.trim() === '')).filter((l) => !l.startsWith(';'));
  };
  const isTransfer = /;; (AXFR|IXFR) for /.test(out);
  return {
    out,
    err,
    status: /status: (\w+)/.exec(out)?.[1],
    flags: (/;; Flags: ([^;]*);/.exec(out)?.[1] ?? '').trim().split(/\s+/).filter(Boolean),
    answers: isTransfer ? out.split('\n').filter((l) => l.trim() && !l.startsWith(';')) : section('ANSWER'),
    authority: section('AUTHORITY'),
    via: /;; From [^(]*\((UDP|TCP)\)/.exec(out)?.[1],
  };
}

/** The RDATA field of a presentation line: everything after `name TTL class type`. */
export function rdataOf(line: string): string {
  return line.split(/\s+/).slice(4).join(' ');
}

/** A query in wire form (RFC 1035 §4.1), optionally with an OPT record (RFC 6891 §6.1.2). */
export function query(name: string, qtype: number, o: { id?: number; edns?: number; opcode?: number } = {}): Buffer {
  const head = encodeHeader({ id: o.id ?? 1, flags: 0x0100, opcode: o.opcode, rcode: 0, qd: 1, an: 0, ns: 0, ar: o.edns ? 1 : 0 });
  return Buffer.concat([head, encodeQuestion(nameToWire(name), qtype), ...(o.edns ? [encodeOpt(o.edns)] : [])]);
}

/** One to four random edits of a message: flipped and replaced octets, cuts, insertions, counts, compression pointers. */
export function mutate(msg: Buffer, rnd: () => number): Buffer {
  let b = Buffer.from(msg);
  const int = (n: number) => Math.floor(rnd() * n);
  for (let k = 1 + int(4); k > 0; k--) {
    const at = int(b.length + 1);
    switch (int(7)) {
      case 0: if (at < b.length) b[at] = b[at]! ^ (1 << int(8)); break;
      case 1: if (at < b.length) b[at] = int(256); break;
      case 2: b = b.subarray(0, at); break;
      case 3: b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256))), b.subarray(at)]); break;
      case 4: if (b.length >= 12) b.writeUInt16BE(int(65536), 4 + 2 * int(4)); break;
      case 5: b = Buffer.concat([b.subarray(0, at), Buffer.from([0xc0 | int(64), int(256)]), b.subarray(at)]); break;
      case 6: b = Buffer.concat([b, b.subarray(12 + int(Math.max(1, b.length - 12)))]); break;
    }
  }
  return b;
}

/** `count` connections that each ask for `transfers` zone transfers at once and never read. */
export function floodAxfr(dns: { host: string; port: number }, count: number, transfers: number): net.Socket[] {
  const axfr = query('dir.mailmesh.test', TYPE.AXFR);
  const flood = Buffer.concat(Array.from({ length: transfers }, () => Buffer.concat([Buffer.from([0, axfr.length]), axfr])));
  return Array.from({ length: count }, () => {
    const sock = net.connect(dns.port, dns.host);
    sock.on('error', () => {});
    sock.pause(); // never reads
    sock.write(flood);
    return sock;
  });
}
