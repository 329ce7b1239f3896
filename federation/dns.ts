import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { encodeHeader, encodeOpt, encodeQuestion, FLAG, HEADER_SIZE, lowerName, nameToWire, RCODE, readName, readRR } from '../directory/dns/wire.js';

/**
 * A stub DNS client for discovery and proofs: one question to the configured resolvers,
 * UDP with EDNS(0) first and TCP when the answer is truncated (RFC 7766 §5). Our own,
 * on directory/dns/wire.ts, because the dns2 3.0.0 client cannot ask for OPENPGPKEY or
 * SMIMEA (it maps type names through a table without them and sends type 0) and decodes
 * each TXT <character-string> as UTF-8 on its own, which corrupts text split at 255 octets
 * (docs/federation.md "DNS client").
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
}

export interface Resolver {
  query(name: string, type: number): Promise<DnsAnswer>;
}

/** Our advertised UDP payload size (RFC 6891 §6.2.5; 1232 as in DNS Flag Day 2020). */
const UDP_SIZE = 1232;

function query(id: number, qname: Buffer, type: number): Buffer {
  // RFC 1035 §4.1.1: RD set (a resolver may recurse), one question; RFC 6891 §6.1.2: one OPT record.
  return Buffer.concat([encodeHeader({ id, flags: FLAG.RD, rcode: 0, qd: 1, an: 0, ns: 0, ar: 1 }), encodeQuestion(qname, type), encodeOpt(UDP_SIZE)]);
}

function malformed(detail: string): never {
  throw new MailmeshError('DNS_MALFORMED', detail);
}

/**
 * RFC 1035 §4.1: decodes a response to our question: the ID and the question must match,
 * QR must be set; answer RRs (§4.1.3) owned by the question name with the asked type are kept.
 * Returns `truncated` for TC (RFC 2181 §9) so that the caller retries over TCP.
 */
export function decodeResponse(msg: Buffer, id: number, qname: Buffer, type: number): DnsAnswer & { truncated: boolean } {
  if (msg.length < HEADER_SIZE) malformed('shorter than a header');
  const flags = msg.readUInt16BE(2);
  if (msg.readUInt16BE(0) !== id || !(flags & FLAG.QR)) malformed('not an answer to our query');
  if (msg.readUInt16BE(4) !== 1) malformed('expected one question');
  const q = readName(msg, HEADER_SIZE);
  const key = lowerName(qname);
  if (!lowerName(q.name).equals(key) || q.end + 4 > msg.length || msg.readUInt16BE(q.end) !== type) malformed('the answer is for another question');
  const truncated = (flags & FLAG.TC) !== 0;
  const rcode = flags & 0xf;
  const records: DnsRecord[] = [];
  let pos = q.end + 4;
  const ancount = msg.readUInt16BE(6);
  for (let i = 0; i < ancount && !truncated; i++) {
    const rr = readRR(msg, pos);
    if (rr.type === type && lowerName(rr.name).equals(key)) records.push({ type: rr.type, ttl: rr.ttl, rdata: Buffer.from(rr.rdata) });
    pos = rr.end;
  }
  return { rcode, records, truncated };
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

/** `host:port`, `[v6]:port` or a bare host (port 53). */
function splitHostPort(server: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(server.trim());
  if (!m) throw new MailmeshError('CONFIG_INVALID', `resolver ${JSON.stringify(server)}: use host:port or [v6]:port`);
  return { host: m[1] ?? m[2]!, port: m[3] ? Number(m[3]) : 53 };
}

function udpAsk(host: string, port: number, msg: Buffer, accept: (m: Buffer) => DnsAnswer & { truncated: boolean }, timeoutMs: number): Promise<DnsAnswer & { truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const done = (f: () => void) => {
      clearTimeout(timer);
      sock.close();
      f();
    };
    const timer = setTimeout(() => done(() => reject(new MailmeshError('LOOKUP_UNAVAILABLE', `${host}:${port} did not answer`))), timeoutMs);
    sock.on('error', (e) => done(() => reject(new MailmeshError('LOOKUP_UNAVAILABLE', `${host}:${port}: ${e.message}`))));
    sock.on('message', (m, rinfo) => {
      if (rinfo.port !== port) return;
      try {
        const a = accept(m);
        done(() => resolve(a));
      } catch {
        // RFC 5452 §9.1: ignore what does not match our question (spoofing, stray answers)
      }
    });
    sock.send(msg, port, host);
  });
}

function tcpAsk(host: string, port: number, msg: Buffer, accept: (m: Buffer) => DnsAnswer & { truncated: boolean }, timeoutMs: number): Promise<DnsAnswer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const fail = (detail: string) => {
      sock.destroy();
      reject(new MailmeshError('LOOKUP_UNAVAILABLE', `${host}:${port} over TCP: ${detail}`));
    };
    sock.setTimeout(timeoutMs, () => fail('timed out'));
    sock.on('error', (e) => fail(e.message));
    sock.on('close', () => fail('closed before the answer'));
    sock.on('connect', () => {
      // RFC 1035 §4.2.2: two-octet length prefix.
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      sock.write(Buffer.concat([len, msg]));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      sock.removeAllListeners('close');
      sock.destroy();
      try {
        resolve(accept(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Asks each server in turn until one answers (any RCODE is an answer); none answering is LOOKUP_UNAVAILABLE. */
export function stubResolver(servers: string[], opts: { timeoutMs?: number } = {}): Resolver {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const targets = servers.map(splitHostPort);
  return {
    async query(name, type) {
      const qname = nameToWire(name);
      const failures: string[] = [];
      for (const { host, port } of targets) {
        const id = randomInt(0x10000);
        const msg = query(id, qname, type);
        const accept = (m: Buffer) => decodeResponse(m, id, qname, type);
        try {
          const a = await udpAsk(host, port, msg, accept, timeoutMs);
          if (!a.truncated) return { rcode: a.rcode, records: a.records };
          return await tcpAsk(host, port, msg, accept, timeoutMs);
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
