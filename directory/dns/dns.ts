import type { Logger } from 'pino';
import type { Directory } from '../directory.js';
import { parseDomain } from '../domain.js';
import { isMailmeshError, MailmeshError } from '../errors.js';
import { followFromStart, type Follower } from '../follow.js';
import { Metrics, type Counter } from '../metrics.js';
import { renderMasterFile } from './master.js';
import { listenDns, type Listening } from './listen.js';
import { addressList, type RrlOptions } from './rrl.js';
import type { TcpLimits } from './tcp.js';
import { TsigKeyring, tsigErrorName, type TsigKeyConfig, type TsigSigner } from './tsig.js';
import {
  encodeHeader, encodeOpt, encodeQuestion, encodeRR, EXTENDED_BADVERS, FLAG, HEADER_SIZE, lowerName, nameToWire,
  parseQuery, RCODE, TYPE, TYPE_NAMES, UDP_MIN, type Query,
} from '../dnswire.js';
import { buildZones, checkZoneOptions, type BuiltZones, type KeyRdata, type Zone, type ZoneOptions } from './zone.js';

export type { ZoneOptions } from './zone.js';

/**
 * The directory's authoritative DNS face (docs/architecture.md "Publication"): UDP and TCP on one port,
 * answers precomputed in wire format whenever a record changes; the hot path only looks the
 * question up, copies it and patches the header.
 */
export interface DnsServerOptions extends ZoneOptions {
  directory: Directory;
  logger?: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** Largest UDP answer we send, whatever the client offers (RFC 6891 §6.2.5). Default 1232 (DNS Flag Day 2020: no IP fragmentation). */
  maxUdpPayload?: number;
  /** Target size of one AXFR message (RFC 5936 §2.2: a transfer is one or more messages). Default 16 KiB. */
  axfrMessageSize?: number;
  /** Limits on TCP connections and what is queued for them (tcp.ts TCP_DEFAULTS). */
  tcp?: Partial<TcpLimits>;
  /** Response-rate limiting on UDP (rrl.ts RRL_DEFAULTS: on). */
  rrl?: Partial<RrlOptions>;
  /** Who may transfer a zone (AXFR/IXFR): these addresses (default loopback), or any client that signs with a key (TSIG). */
  transfer?: { allow?: string[]; tsig?: TsigKeyConfig[] };
  /** Where mailmesh_faults_total{face="dns"} and the DNS limit counters go; default a registry of its own. */
  metrics?: Metrics;
  /** Wall clock for TSIG times and RRL buckets; default the directory's. */
  clock?: () => Date;
}

/** Where a message came from: the transport decides size limits and what may be transferred. */
export interface Client {
  transport: 'udp' | 'tcp';
  address: string;
}

/** Prebuilt answer RRs of one RRset (or of all RRsets for ANY), owner written as a pointer to the question. */
interface Answer {
  count: number;
  data: Buffer;
}

interface CompiledZone {
  apex: string;
  /** The SOA with its full owner name: the authority section of NXDOMAIN/NODATA (RFC 2308 §3). */
  soa: Buffer;
  /** Every record with full owner names, the SOA first, for AXFR (RFC 5936 §2.2). */
  all: Buffer[];
}

interface Node {
  zone: CompiledZone;
  /** Empty for an empty non-terminal (RFC 8020: it exists, so NODATA). */
  rrsets: Map<number, Answer>;
}

interface Table {
  serial: number;
  nodes: Map<string, Node>;
  zones: Map<string, CompiledZone>;
}

// RFC 1035 §4.1.4: a pointer (0b11 + offset 12) to the question name, the owner of every answer RR.
const QNAME_POINTER = Buffer.from([0xc0, HEADER_SIZE]);
const key = (text: string) => lowerName(nameToWire(text)).toString('latin1');

/** Compiles zones into the lookup table: one entry per name (empty non-terminals included) and type. */
function compile(zones: Zone[], serial: number): Table {
  const table: Table = { serial, nodes: new Map(), zones: new Map() };
  for (const z of zones) {
    const all = z.records.map((r) => encodeRR(nameToWire(r.owner), r.type, r.ttl, r.rdata));
    const cz: CompiledZone = { apex: z.apex, soa: all[0]!, all };
    const apexKey = key(z.apex);
    table.zones.set(apexKey, cz);
    const sets = new Map<string, Map<number, Buffer[]>>();
    for (const r of z.records) {
      const k = key(r.owner);
      if (!sets.has(k)) sets.set(k, new Map());
      const byType = sets.get(k)!;
      if (!byType.has(r.type)) byType.set(r.type, []);
      byType.get(r.type)!.push(encodeRR(QNAME_POINTER, r.type, r.ttl, r.rdata));
      // Every ancestor up to the apex exists too, as an empty non-terminal if it owns nothing.
      for (let p = k; p !== apexKey && p.length > 1; p = p.slice(p.charCodeAt(0) + 1)) {
        if (!table.nodes.has(p)) table.nodes.set(p, { zone: cz, rrsets: new Map() });
      }
    }
    table.nodes.set(apexKey, { zone: cz, rrsets: new Map() });
    for (const [k, byType] of sets) {
      const node = table.nodes.get(k)!;
      const every = [...byType.values()].flat();
      for (const [type, rrs] of byType) node.rrsets.set(type, { count: rrs.length, data: Buffer.concat(rrs) });
      node.rrsets.set(TYPE.ANY, { count: every.length, data: Buffer.concat(every) });
    }
  }
  return table;
}

/** The zone a name falls in: the longest apex it ends with, at a label boundary. */
function zoneOf(table: Table, k: string): CompiledZone | undefined {
  for (let p = 0; p < k.length; p += k.charCodeAt(p) + 1) {
    const z = table.zones.get(p === 0 ? k : k.slice(p));
    if (z) return z;
    if (k.charCodeAt(p) === 0) break;
  }
  return undefined;
}

/** The zones as they are in the store now, at a serial that only grows (the store's). */
async function snapshot(d: Directory, opts: ZoneOptions, cache?: Map<string, { serial: number; rdata: KeyRdata }>): Promise<BuiltZones & { serial: number }> {
  // The serial is read first, so the content is at least as new as the serial it is served under.
  const storeSerial = await d.serial();
  const records = await d.listDomains();
  const serial = records.reduce((max, r) => Math.max(max, r.serial), storeSerial);
  // The transparency log's key (docs/transparency.md), when the directory keeps a log.
  const logVerifierKey = await d.log?.verifierKey();
  return { ...(await buildZones(records, serial, { ...opts, ...(logVerifierKey && { logVerifierKey }) }, cache)), serial };
}

/** `mailmesh zone export`: one zone (default the federation zone) in RFC 1035 §5 master-file form. */
export async function exportZone(d: Directory, opts: ZoneOptions, apex?: string): Promise<string> {
  const { zones, skipped, serial } = await snapshot(d, opts);
  const want = apex ? parseDomain(apex) : zones[0]!.apex;
  const zone = zones.find((z) => z.apex === want);
  if (!zone) throw new MailmeshError('NOT_FOUND', `${want} is not a zone of this directory (dns.zone or dns.authoritativeFor)`);
  const notes = skipped.map((s) => `; left out ${s.domain}: ${s.reason}\n`).join('');
  return renderMasterFile(zone, `serial ${serial}`) + notes;
}

/** Label values of mailmesh_dns_queries_total: the types this face knows; any other is `other` (bounded label set). */
const QTYPE_LABELS: Record<number, string> = { ...TYPE_NAMES, [TYPE.IXFR]: 'IXFR', [TYPE.AXFR]: 'AXFR', [TYPE.ANY]: 'ANY' };
const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RCODE).map(([name, code]) => [code, name]));

export class DnsServer {
  readonly #opts: DnsServerOptions & Required<Pick<DnsServerOptions, 'maxUdpPayload' | 'axfrMessageSize' | 'clock'>>;
  #table: Table;
  readonly #cache = new Map<string, { serial: number; rdata: KeyRdata }>();
  #follow?: Follower;
  #listening?: Listening;
  readonly #keyring: TsigKeyring;
  readonly #transferAllowed: (address: string) => boolean;
  readonly metrics: Metrics;
  readonly #faults: Counter;
  readonly #transfers: Counter;
  readonly #queries: Counter;
  #faultLog = { at: 0, suppressed: 0 };

  private constructor(opts: DnsServerOptions) {
    const clock = opts.clock ?? opts.directory.clock;
    this.#opts = {
      ...opts,
      ...checkZoneOptions(opts),
      maxUdpPayload: Math.min(Math.max(opts.maxUdpPayload ?? 1232, UDP_MIN), 65535),
      axfrMessageSize: opts.axfrMessageSize ?? 16384,
      clock,
    };
    this.#keyring = new TsigKeyring(opts.transfer?.tsig ?? [], () => Math.floor(clock().getTime() / 1000));
    this.#transferAllowed = addressList(opts.transfer?.allow ?? ['127.0.0.0/8', '::1/128'], 'dns.transfer.allow');
    this.metrics = opts.metrics ?? new Metrics();
    this.#faults = this.metrics.faults();
    this.#transfers = this.metrics.counter('mailmesh_dns_transfers_total', 'Zone transfer requests (AXFR/IXFR) by result', ['result']);
    this.#queries = this.metrics.counter('mailmesh_dns_queries_total', 'Queries answered, by transport, question type and response code', ['transport', 'qtype', 'rcode']);
    this.#table = compile([], 0);
  }

  /** Builds the first table and follows the directory's 'change' events from before it on. */
  static async create(opts: DnsServerOptions): Promise<DnsServer> {
    const s = new DnsServer(opts);
    s.#follow = await followFromStart(opts.directory, () => s.#rebuild(), (err) =>
      opts.logger?.error({ err }, 'dns: rebuilding the zones failed; serving the previous ones'));
    return s;
  }

  /** The SOA serial being served. */
  get serial(): number {
    return this.#table.serial;
  }

  /** Resolves when every change seen so far is in the served table. */
  async settled(): Promise<void> {
    await this.#follow?.settled();
  }

  async #rebuild(): Promise<void> {
    const { zones, skipped, serial } = await snapshot(this.#opts.directory, this.#opts, this.#cache);
    for (const s of skipped) this.#opts.logger?.warn(s, 'dns: domain left out of the zone');
    this.#table = compile(zones, serial);
    this.#opts.logger?.debug({ serial, zones: zones.map((z) => z.apex) }, 'dns: zones rebuilt');
  }

  /**
   * A fault contained by the face: one datagram or connection failed, the server goes on.
   * Counted every time; logged at most once a second (a flood of bad datagrams is no log flood).
   */
  fault(err: unknown, context: object = {}): void {
    this.#faults.inc({ face: 'dns' });
    const now = Date.now();
    if (now - this.#faultLog.at < 1000) return void this.#faultLog.suppressed++;
    const e = err as { message?: string; code?: string } | undefined;
    this.#opts.logger?.warn({ ...context, err: e?.message ?? String(err), code: e?.code, suppressed: this.#faultLog.suppressed }, 'dns: fault contained');
    this.#faultLog = { at: now, suppressed: 0 };
  }

  /**
   * Answers one message; returns the messages to send back (none for what must not be
   * answered, several for AXFR). Never throws.
   */
  handle(msg: Buffer, transport: 'udp' | 'tcp', address = '127.0.0.1'): Buffer[] {
    return [...this.respond(msg, { transport, address })];
  }

  /** The answers to one message, made one by one as they are sent (an AXFR may be many); each answered query counted once. */
  *respond(msg: Buffer, client: Client): Generator<Buffer> {
    const asked: { qtype?: number } = {};
    let counted = false;
    for (const out of this.#respond(msg, client, asked)) {
      // RFC 1035 §4.1.1: RCODE is the low 4 bits of the header's fourth octet.
      if (!counted) this.#queries.inc({ transport: client.transport, qtype: QTYPE_LABELS[asked.qtype ?? -1] ?? 'other', rcode: RCODE_NAMES[out[3]! & 0x0f] ?? 'other' });
      counted = true;
      yield out;
    }
  }

  *#respond(msg: Buffer, client: Client, asked: { qtype?: number }): Generator<Buffer> {
    // RFC 1035 §4.1.1: no answer without a header to take the ID from, and never to a response (QR set).
    if (msg.length < HEADER_SIZE || msg[2]! & 0x80) return;
    const id = msg.readUInt16BE(0);
    const word = msg.readUInt16BE(2);
    const opcode = (word >> 11) & 0xf;
    const base = FLAG.QR | (word & (FLAG.RD | FLAG.CD));
    const bare = (rcode: number) => encodeHeader({ id, flags: base, opcode, rcode, qd: 0, an: 0, ns: 0, ar: 0 });
    if (opcode !== 0) return yield bare(RCODE.NOTIMP);
    let q: Query;
    let signer: TsigSigner | undefined;
    try {
      q = parseQuery(msg);
      asked.qtype = q.qtype;
      // RFC 8945 §5.2: a signed request is verified, and its answer signed, whatever it asks.
      if (q.tsig) signer = this.#keyring.verify(msg, q);
    } catch (e) {
      if (isMailmeshError(e, 'DNS_MALFORMED')) return yield bare(RCODE.FORMERR);
      this.fault(e, { remote: client.address, where: 'decode' });
      return yield bare(RCODE.SERVFAIL);
    }
    if (signer?.error) {
      // RFC 8945 §5.2: NOTAUTH, the TSIG error in the TSIG record.
      if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) this.#transfers.inc({ result: tsigErrorName(signer.error).toLowerCase() });
      const header = encodeHeader({ id, flags: base, rcode: RCODE.NOTAUTH, qd: 1, an: 0, ns: 0, ar: 0 });
      return yield signer.sign(Buffer.concat([header, encodeQuestion(q.qname, q.qtype, q.qclass)]));
    }
    try {
      for (const out of this.#answer(q, client, signer ? signer.overhead : 0, !!signer)) yield signer ? signer.sign(out) : out;
    } catch (e) {
      // An unexpected failure while answering: SERVFAIL (RFC 1035 §4.1.1), counted as a fault of this request.
      this.fault(e, { remote: client.address, where: 'answer' });
      yield bare(RCODE.SERVFAIL);
    }
  }

  *#answer(q: Query, client: Client, reserve: number, signed: boolean): Generator<Buffer> {
    const table = this.#table;
    const question = encodeQuestion(q.qname, q.qtype, q.qclass);
    // RFC 6891 §6.1.1: echo an OPT record when the query has one; advertise our own payload size.
    const opt = q.edns ? encodeOpt(this.#opts.maxUdpPayload) : undefined;
    const reply = (rcode: number, aa: boolean, an?: Answer, ns?: Buffer, tc = false, extOpt = opt): Buffer => {
      const parts = [question, an?.data, ns, extOpt].filter((b): b is Buffer => !!b);
      const flags = FLAG.QR | q.copyFlags | (aa ? FLAG.AA : 0) | (tc ? FLAG.TC : 0);
      const header = encodeHeader({ id: q.id, flags, rcode, qd: 1, an: an?.count ?? 0, ns: ns ? 1 : 0, ar: extOpt ? 1 : 0 });
      return Buffer.concat([header, ...parts]);
    };
    // RFC 6891 §6.1.3: we speak EDNS version 0 only; BADVERS is extended RCODE 16.
    if (q.edns && q.edns.version !== 0) return yield reply(0, false, undefined, undefined, false, encodeOpt(this.#opts.maxUdpPayload, EXTENDED_BADVERS));
    if (q.qclass !== 1) return yield reply(RCODE.REFUSED, false);

    const node = table.nodes.get(q.key);
    const zone = node?.zone ?? zoneOf(table, q.key);
    // RFC 1035 §4.1.1 REFUSED: a name outside every zone we serve.
    if (!zone) return yield reply(RCODE.REFUSED, false);
    if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return yield* this.#transfer(q, table, client, signed, reply);
    // RFC 8482 §4.4 spirit: ANY over UDP gets TC (no amplification); over TCP, every RRset.
    if (q.qtype === TYPE.ANY && client.transport === 'udp') return yield reply(RCODE.NOERROR, true, undefined, undefined, true);

    const an = node?.rrsets.get(q.qtype);
    // RFC 2308 §2.1/§2.2: NXDOMAIN when the name does not exist, NODATA (NOERROR, no answer) when
    // it exists without that type; both carry the zone's SOA in the authority section.
    const full = an ? reply(RCODE.NOERROR, true, an) : reply(node ? RCODE.NOERROR : RCODE.NXDOMAIN, true, undefined, zone.soa);
    // RFC 1035 §4.2.1 / RFC 6891 §6.2.5: 512 octets without EDNS, else what the client offers (not less
    // than 512), capped by ours. RFC 2181 §9: a truncated answer is header + question (+ OPT), TC set.
    // A TSIG record to come (RFC 8945 §5.3) must fit too.
    const limit = (client.transport === 'tcp' ? 65535 : q.edns ? Math.min(Math.max(q.edns.udpSize, UDP_MIN), this.#opts.maxUdpPayload) : UDP_MIN) - reserve;
    if (full.length <= limit) return yield full;
    yield reply(full.readUInt16BE(2) & 0xf, true, undefined, undefined, true);
  }

  /**
   * RFC 5936 §2.2 (AXFR) and RFC 1995 §4 (IXFR answered with a full transfer): TCP only, at a zone
   * apex, to an allowed address or a TSIG-signed request (RFC 5936 §6); else REFUSED (§2.2.1).
   */
  *#transfer(q: Query, table: Table, client: Client, signed: boolean, reply: (rcode: number, aa: boolean, an?: Answer) => Buffer): Generator<Buffer> {
    const zone = table.zones.get(q.key);
    if (!zone) return yield reply(RCODE.NOTAUTH, false);
    if (!signed && !this.#transferAllowed(client.address)) {
      this.#transfers.inc({ result: 'refused' });
      return yield reply(RCODE.REFUSED, false);
    }
    const soaAnswer = table.nodes.get(q.key)!.rrsets.get(TYPE.SOA)!;
    if (client.transport === 'udp') {
      // RFC 1995 §2: an IXFR over UDP that does not fit is answered with the current SOA alone. AXFR is TCP only (RFC 5936 §4.2).
      return yield q.qtype === TYPE.IXFR ? reply(RCODE.NOERROR, true, soaAnswer) : reply(RCODE.REFUSED, false);
    }
    this.#transfers.inc({ result: signed ? 'tsig' : 'address' });
    const rrs = [...zone.all, zone.soa]; // RFC 5936 §2.2: the SOA first and last
    const opt = q.edns ? encodeOpt(this.#opts.maxUdpPayload) : undefined;
    for (let i = 0, first = true; i < rrs.length; first = false) {
      // RFC 5936 §2.2.1: the question is in the first message; the rest may leave it out.
      const question = first ? encodeQuestion(q.qname, q.qtype, q.qclass) : Buffer.alloc(0);
      const batch: Buffer[] = [];
      let size = HEADER_SIZE + question.length + (opt?.length ?? 0);
      while (i < rrs.length && (batch.length === 0 || size + rrs[i]!.length <= this.#opts.axfrMessageSize)) {
        size += rrs[i]!.length;
        batch.push(rrs[i++]!);
      }
      const header = encodeHeader({ id: q.id, flags: FLAG.QR | FLAG.AA | q.copyFlags, rcode: 0, qd: question.length ? 1 : 0, an: batch.length, ns: 0, ar: opt ? 1 : 0 });
      yield Buffer.concat([header, question, ...batch, ...(opt ? [opt] : [])]);
    }
  }

  /** Listens on UDP and TCP on the same port (listen.ts), with the limits of the options. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const clock = this.#opts.clock;
    this.#listening = await listenDns(host, port, {
      respond: (msg, client) => this.respond(msg, client),
      fault: (err, context) => this.fault(err, context),
      metrics: this.metrics,
      tcp: this.#opts.tcp ?? {},
      rrl: this.#opts.rrl ?? {},
      now: () => clock().getTime(),
    });
    return { host, port: this.#listening.port };
  }

  async close(): Promise<void> {
    this.#follow?.stop();
    await this.#listening?.close();
    await this.settled();
  }
}

export function createDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  return DnsServer.create(opts);
}
