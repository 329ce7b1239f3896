import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { encodeHeader, encodeOpt, encodeQuestion, FLAG, HEADER_SIZE, lowerName, nameToWire, RCODE, readName, readRR } from '../directory/dnswire.js';

/**
 * A stub DNS client for discovery and proofs: one question to the configured resolvers,
 * UDP with EDNS(0) first and TCP when the answer is truncated (RFC 7766 §5). Our own,
 * on directory/dnswire.ts, because the dns2 3.0.0 client cannot ask for OPENPGPKEY or
 * SMIMEA (it maps type names through a table without them and sends type 0) and decodes
 * each TXT <character-string> as UTF-8 on its own, which corrupts text split at 255 octets
 * (docs/federation.md "DNS client").
 *
 * Against off-path spoofing (RFC 5452; docs/security/resolver.md): a fresh UDP socket per
 * query (the kernel picks a random ephemeral port, RFC 6056), connected to the server so
 * only its address and port can answer, a random ID, 0x20 case randomisation of the query
 * name checked case-exactly in the reply (draft-vixie-dnsext-dns0x20), and the question
 * (name, type, class) checked. DNSSEC is not validated here: the AD bit of a validating
 * resolver on loopback is trusted when configured (`dnssec: trust-ad-from-loopback`).
 */

export interface DnsRecord {
  type: number;
  ttl: number;
  rdata: Buffer;
}

export interface DnsAnswer {
  rcode: number;
  /** Answer records owned by the question name with the asked type. */
  records: DnsRecord[];
  /** DNSSEC-validated: AD set by a resolver whose AD bit is trusted (see DnssecMode). */
  authenticated: boolean;
}

export interface Resolver {
  query(name: string, type: number): Promise<DnsAnswer>;
}

/**
 * off: no answer counts as DNSSEC-validated. trust-ad-from-loopback: the AD bit (RFC 4035
 * §3.2.3, RFC 6840 §5.8) counts when the resolver that set it is on 127.0.0.0/8 or ::1 — a
 * validating resolver on this host, as Postfix does with `smtp_dns_support_level = dnssec`.
 * AD from any other address is never trusted: the path to it is unauthenticated.
 */
export type DnssecMode = 'off' | 'trust-ad-from-loopback';
export const DNSSEC_MODES = ['off', 'trust-ad-from-loopback'] as const;

/** RFC 4035 §3.2.3 / RFC 6840 §5.7: AD in the header (a query with AD asks for it back). */
const AD = 0x0020;
/** RFC 1035 §3.2.4: class IN. */
const CLASS_IN = 1;

/** Our advertised UDP payload size (RFC 6891 §6.2.5; 1232 as in DNS Flag Day 2020). */
const UDP_SIZE = 1232;

function query(id: number, qname: Buffer, type: number): Buffer {
  // RFC 1035 §4.1.1: RD set (a resolver may recurse), one question; RFC 6891 §6.1.2: one OPT
  // record, with DO (RFC 3225 §3) so that a validating resolver validates and says so in AD.
  const opt = encodeOpt(UDP_SIZE);
  opt[7]! |= 0x80; // RFC 6891 §6.1.3: the DO bit is the top bit of the OPT TTL's flags
  return Buffer.concat([encodeHeader({ id, flags: FLAG.RD | AD, rcode: 0, qd: 1, an: 0, ns: 0, ar: 1 }), encodeQuestion(qname, type), opt]);
}

/** draft-vixie-dnsext-dns0x20: each ASCII letter of the query name in a random case; the reply must echo it exactly. */
export function randomCase(qname: Buffer): Buffer {
  const out = Buffer.from(qname);
  const bits = randomBytes(out.length);
  for (let i = 0; i < out.length; ) {
    const len = out[i]!;
    for (let j = i + 1; j <= i + len; j++) {
      const c = out[j]! | 0x20;
      if (c >= 0x61 && c <= 0x7a) out[j] = bits[j]! & 1 ? c & ~0x20 : c;
    }
    i += len + 1;
    if (len === 0) break;
  }
  return out;
}

function malformed(detail: string): never {
  throw new MailmeshError('DNS_MALFORMED', detail);
}

/**
 * RFC 1035 §4.1: decodes a response to our question: the ID must match, QR must be set, and
 * the question must be ours — the name octet for octet (the 0x20 case pattern we sent,
 * draft-vixie-dnsext-dns0x20), the type and class IN (RFC 5452 §9.1). Answer RRs (§4.1.3)
 * owned by the question name (any case, RFC 4343) with the asked type and class are kept.
 * Returns `truncated` for TC (RFC 2181 §9) so that the caller retries over TCP, and `ad`.
 */
export function decodeResponse(msg: Buffer, id: number, qname: Buffer, type: number): Omit<DnsAnswer, 'authenticated'> & { truncated: boolean; ad: boolean } {
  if (msg.length < HEADER_SIZE) malformed('shorter than a header');
  const flags = msg.readUInt16BE(2);
  if (msg.readUInt16BE(0) !== id || !(flags & FLAG.QR)) malformed('not an answer to our query');
  if (msg.readUInt16BE(4) !== 1) malformed('expected one question');
  const q = readName(msg, HEADER_SIZE);
  if (!q.name.equals(qname) || q.end + 4 > msg.length || msg.readUInt16BE(q.end) !== type || msg.readUInt16BE(q.end + 2) !== CLASS_IN) malformed('the answer is for another question');
  const key = lowerName(qname);
  const truncated = (flags & FLAG.TC) !== 0;
  const rcode = flags & 0xf;
  const records: DnsRecord[] = [];
  let pos = q.end + 4;
  const ancount = msg.readUInt16BE(6);
  for (let i = 0; i < ancount && !truncated; i++) {
    const rr = readRR(msg, pos);
    if (rr.type === type && rr.klass === CLASS_IN && lowerName(rr.name).equals(key)) records.push({ type: rr.type, ttl: rr.ttl, rdata: Buffer.from(rr.rdata) });
    pos = rr.end;
  }
  return { rcode, records, truncated, ad: (flags & AD) !== 0 };
}

/** RFC 1035 §3.3.14: TXT RDATA is one or more <character-string>s; like RFC 7208 §3.3 we join them without separator. */
export function txtText(rdata: Buffer): string {
  const parts: Buffer[] = [];
  for (let i = 0; i < rdata.length; ) {
    const len = rdata[i]!;
    if (i + 1 + len > rdata.length) malformed('TXT character-string runs past its RDATA');
    parts.push(rdata.subarray(i + 1, i + 1 + len));
    i += 1 + len;
  }
  return Buffer.concat(parts).toString('utf8');
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** RFC 1122 §3.2.1.3 (127.0.0.0/8), RFC 4291 §2.5.3 (::1), and RFC 4291 §2.5.5.2 IPv4-mapped loopback. */
export function isLoopback(ip: string): boolean {
  const v4 = ip.replace(/^::ffff:/i, '');
  if (net.isIPv4(v4)) return LOOPBACK.check(v4, 'ipv4');
  return net.isIPv6(ip) && LOOPBACK.check(ip, 'ipv6');
}

/** `host:port`, `[v6]:port` or a bare address (port 53); an IP address, as in resolv.conf, so replies can be matched on it. */
function splitHostPort(server: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(server.trim());
  const host = m && (m[1] ?? m[2]!);
  if (!m || !host || !net.isIP(host) || (m[1] !== undefined && !net.isIPv6(host))) {
    throw new MailmeshError('CONFIG_INVALID', `resolver ${JSON.stringify(server)}: use an IP address, ip:port or [v6]:port`);
  }
  const port = m[3] ? Number(m[3]) : 53;
  if (port < 1 || port > 65535) throw new MailmeshError('CONFIG_INVALID', `resolver ${JSON.stringify(server)}: port out of range`);
  return { host, port };
}

type Decoded = ReturnType<typeof decodeResponse>;

/** Settles an exchange once: the first call cleans up (timer, socket) and runs its outcome, later ones do nothing. */
function once(cleanup: () => void): (outcome: () => void) => void {
  let settled = false;
  return (outcome) => {
    if (settled) return;
    settled = true;
    cleanup();
    outcome();
  };
}

/**
 * One UDP exchange on a fresh socket (random ephemeral source port, RFC 5452 §9.2), connected
 * to the server: the kernel drops datagrams from any other address or port, and we check both
 * again. A datagram that is not the answer to our question is ignored (RFC 5452 §9.1).
 */
function udpAsk(host: string, port: number, msg: Buffer, accept: (m: Buffer) => Decoded, timeoutMs: number): Promise<Decoded> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    let peer: string | undefined;
    const done = once(() => {
      clearTimeout(timer);
      sock.close();
    });
    const timer = setTimeout(() => done(() => reject(new MailmeshError('LOOKUP_UNAVAILABLE', `${host}:${port} did not answer`))), timeoutMs);
    sock.on('error', (e) => done(() => reject(new MailmeshError('LOOKUP_UNAVAILABLE', `${host}:${port}: ${e.message}`))));
    sock.on('message', (m, rinfo) => {
      if (rinfo.port !== port || rinfo.address !== peer) return;
      try {
        const a = accept(m);
        done(() => resolve(a));
      } catch {
        // RFC 5452 §9.1: ignore what does not match our question (spoofing, stray answers)
      }
    });
    sock.connect(port, host, (err?: Error) => {
      if (err) return done(() => reject(new MailmeshError('LOOKUP_UNAVAILABLE', `${host}:${port}: ${err.message}`)));
      peer = sock.remoteAddress().address;
      sock.send(msg);
    });
  });
}

/** RFC 7766 §5/§8: the same query over TCP (two-octet length prefix, RFC 1035 §4.2.2), the whole exchange bounded by timeoutMs. */
function tcpAsk(host: string, port: number, msg: Buffer, accept: (m: Buffer) => Decoded, timeoutMs: number): Promise<Decoded> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const finish = once(() => {
      clearTimeout(timer);
      sock.destroy();
    });
    const fail = (detail: string) => finish(() => reject(new MailmeshError('LOOKUP_UNAVAILABLE', `${host}:${port} over TCP: ${detail}`)));
    // A deadline for the whole exchange, not an idle timeout: a server trickling octets cannot hold us.
    const timer = setTimeout(() => fail('timed out'), timeoutMs);
    sock.on('error', (e) => fail(e.message));
    sock.on('close', () => fail('closed before the answer'));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      sock.write(Buffer.concat([len, msg]));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      try {
        const a = accept(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        finish(() => resolve(a));
      } catch (e) {
        // One connection carries only our query: anything else there is an error, not noise.
        finish(() => reject(e));
      }
    });
  });
}

/**
 * Asks each server in turn until one answers (any RCODE is an answer); none answering is
 * LOOKUP_UNAVAILABLE. `dnssec` (default off) decides whose AD bit makes an answer `authenticated`.
 */
export function stubResolver(servers: string[], opts: { timeoutMs?: number; dnssec?: DnssecMode } = {}): Resolver {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const targets = servers.map(splitHostPort);
  const trustAd = (host: string) => opts.dnssec === 'trust-ad-from-loopback' && isLoopback(host);
  return {
    async query(name, type) {
      const wire = nameToWire(name);
      const failures: string[] = [];
      for (const { host, port } of targets) {
        const id = randomInt(0x10000);
        const qname = randomCase(wire);
        const msg = query(id, qname, type);
        const accept = (m: Buffer) => decodeResponse(m, id, qname, type);
        try {
          let a = await udpAsk(host, port, msg, accept, timeoutMs);
          if (a.truncated) a = await tcpAsk(host, port, msg, accept, timeoutMs);
          // RFC 4035 §3.2.3: AD on NOERROR/NXDOMAIN means the resolver validated the answer (or the denial).
          const validated = a.ad && (a.rcode === RCODE.NOERROR || a.rcode === RCODE.NXDOMAIN);
          return { rcode: a.rcode, records: a.records, authenticated: validated && trustAd(host) };
        } catch (e) {
          if (!isMailmeshError(e)) throw e;
          failures.push(e.message);
        }
      }
      throw new MailmeshError('LOOKUP_UNAVAILABLE', `${name}: ${failures.join('; ') || 'no resolvers configured'}`);
    },
  };
}

/** Records of one type, or [] for NXDOMAIN/NODATA (RFC 2308); other RCODEs (SERVFAIL, REFUSED) are LOOKUP_UNAVAILABLE. */
export async function lookupRecords(resolver: Resolver, name: string, type: number): Promise<DnsRecord[]> {
  const a = await resolver.query(name, type);
  if (a.rcode === RCODE.NOERROR || a.rcode === RCODE.NXDOMAIN) return a.records;
  throw new MailmeshError('LOOKUP_UNAVAILABLE', `${name}: rcode ${a.rcode}`);
}

/**
 * Wraps resolvers and remembers, per (name, type), whether every answer was DNSSEC-authenticated,
 * so that a caller can say afterwards what a conclusion drawn from DNS rests on.
 */
export class AnswerLog {
  readonly #seen = new Map<string, boolean>();

  static #key(name: string, type: number): string {
    return `${name.toLowerCase().replace(/\.$/, '')}/${type}`;
  }

  wrap(r: Resolver): Resolver {
    return {
      query: async (name, type) => {
        const a = await r.query(name, type);
        const k = AnswerLog.#key(name, type);
        this.#seen.set(k, (this.#seen.get(k) ?? true) && a.authenticated);
        return a;
      },
    };
  }

  /** Was (name, type) asked, and was every answer to it authenticated? */
  authenticated(name: string, type: number): boolean {
    return this.#seen.get(AnswerLog.#key(name, type)) === true;
  }
}
