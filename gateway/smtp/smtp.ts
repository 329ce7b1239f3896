import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerEnvelope, SMTPServerSession } from 'smtp-server';
import type { Domain } from '../../directory/domain.js';
import { parseAddress } from '../../directory/domain.js';
import { MailmeshError, asMailmeshError, isMailmeshError } from '../errors.js';
import { DEFAULT_CLIENT_TIMEOUTS, SmtpClient, replyText, type ClientTimeouts, type Reply } from './client.js';
import { Listener } from './listener.js';
import { domainMatcher, ipMatcher, type Direction, type NextHop } from './route.js';
import type { TlsPolicy } from './client.js';
import { selfSignedCertificate, type TlsKeyPair } from '../../directory/tls.js';
import { EdgeGuard, type EdgeLimits } from '../../directory/edge.js';
import type { Metrics } from '../../directory/metrics.js';

export type { Direction, NextHop } from './route.js';

/**
 * The queue-less SMTP relay (docs/architecture.md "The queue-less gateway", docs/smtp.md): one SMTP
 * listener; each upstream transaction is mirrored, command by command, by a transaction
 * with the next hop; the upstream gets 250 only after the next hop said 250 for the
 * processed message. Nothing is written to disk.
 */

/** What `process` and the log know about a transaction. */
export interface Envelope {
  /** smtp-server's session id, also in the Received header and the log. */
  session: string;
  direction: Direction;
  /** The reverse-path; '' for the null sender. */
  from: string;
  /** The recipients the next hop accepted. */
  to: string[];
  remoteAddress: string;
  /** The name the client gave in EHLO/HELO. */
  helo: string;
  /** The upstream session is TLS-protected. */
  secure: boolean;
  smtpUtf8: boolean;
  bodyType: '7bit' | '8bitmime';
  /** The `plan` recipientPolicy gave for the first accepted recipient (all share its route and tag). */
  plan?: unknown;
}

export interface Limits {
  /** Largest message in octets (advertised with SIZE, RFC 1870); larger ones get 552 5.3.4. */
  size: number;
  /** Simultaneous upstream connections; more get 421. */
  connections: number;
  /** Recipients per transaction; more get 452 4.5.3. */
  recipients: number;
  /** Received headers a message may carry before it is refused as a loop (RFC 5321 §6.3). */
  hops: number;
}

export interface Timeouts extends ClientTimeouts {
  /** process() of one message; then 451 4.3.0. */
  process: number;
  /** An upstream client that sends nothing for this long is disconnected (421). */
  idle: number;
  /** close() waits this long for open sessions before it cuts them off with 421. */
  shutdown: number;
}

export const DEFAULT_LIMITS: Limits = { size: 25 * 1024 * 1024, connections: 200, recipients: 100, hops: 100 };
// RFC 5321 §4.5.3.2: the upstream waits 5 min for RCPT and 10 min after the final dot; every
// step of ours (connect + RCPT; process + DATA end) stays well inside.
export const DEFAULT_TIMEOUTS: Timeouts = { ...DEFAULT_CLIENT_TIMEOUTS, process: 60_000, idle: 300_000, shutdown: 30_000 };

/** A pino logger fits; only these three levels are used. */
export interface GatewayLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type Outcome = 'relayed' | 'rejected' | 'deferred' | 'failed' | 'too_big' | 'aborted';
const OUTCOMES: Outcome[] = ['relayed', 'rejected', 'deferred', 'failed', 'too_big', 'aborted'];

/** Counters a metrics module reads (plain numbers, only ever incremented except `connections.current`). */
export interface GatewayStats {
  connections: { total: number; current: number };
  /** Transactions with at least one accepted recipient, by direction and outcome. */
  messages: Record<Direction, Record<Outcome, number>>;
  recipients: { accepted: number; refused: number; deferred: number; relayDenied: number; otherRoute: number };
  nextHop: {
    connects: number;
    connectFailures: number;
    /** From the end of our DATA to the next hop's final reply. */
    dataLatencyMs: { count: number; sum: number; max: number };
  };
}

export interface GatewayOptions {
  listen?: { host?: string; port?: number };
  /** Our host name: greeting, EHLO to the next hop, Received header. Default os.hostname(). */
  name?: string;
  /** Our mail domains (a list, `.example.org` includes subdomains) or a predicate: recipients there are inbound. */
  ourDomains: readonly string[] | ((domain: Domain) => boolean);
  /** Internal networks (CIDR list) or a predicate over the client address: their mail to other domains is outbound. */
  isInternal: readonly string[] | ((remoteAddress: string) => boolean);
  /** The next hop(s) for a recipient domain, tried in order (route.ts createRouter is the usual one). */
  route(domain: Domain, direction: Direction): Promise<NextHop[]> | NextHop[];
  /**
   * The routing policy, asked per recipient before routing: a reply refuses the recipient at
   * RCPT time (e.g. `require` and no key); a `tag` becomes part of the route, so recipients
   * with different tags (e.g. different encryption targets) never share a transaction.
   */
  recipientPolicy?(domain: Domain, direction: Direction, from: string, to: string): Promise<RecipientDecision> | RecipientDecision;
  /** The transformation (tunnel crypto). May throw: the upstream gets 451 and keeps the message. */
  process(message: Buffer, envelope: Envelope, signal: AbortSignal): Promise<Buffer | Uint8Array>;
  /** Certificate for STARTTLS; a self-signed one for `name` is made when absent. */
  tls?: TlsKeyPair;
  limits?: Partial<Limits>;
  timeouts?: Partial<Timeouts>;
  logger?: GatewayLogger;
  /** Keep smtp-server's 100 ms early-talker greeting delay (default off; docs/smtp.md). */
  earlyTalkerCheck?: boolean;
  /** Prepend a Received header (RFC 5321 §4.4) to what is relayed; default true. */
  received?: boolean;
  /** Called with each next hop's DATA latency in ms (for a metrics histogram). */
  observeNextHopLatency?(ms: number): void;
  /** Clock in ms (latency counters, Received date). */
  now?: () => number;
  /** Connections per address (and in total, with limits.connections), lifetime, drain timeout (directory/edge.ts). */
  edge?: Partial<EdgeLimits>;
  /** RFC 5321 §4.5.3.1.4: command lines longer than this (CRLF included) get 500 5.5.2; default 512. */
  maxCommandLineBytes?: number;
  /** Where faults are counted (mailmesh_faults_total{face="smtp"}). */
  metrics?: Metrics;
}

export interface Gateway {
  server: Listener;
  stats: GatewayStats;
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/**
 * `tls` raises the next hop's STARTTLS policy for this recipient (e.g. `encrypt` for the `tls`
 * fallback); `plan`, opaque here, comes back in `Envelope.plan`, so what was decided at RCPT
 * time is not worked out again at DATA time.
 */
export type RecipientDecision = { refuse: Reply } | { tag?: string; tls?: TlsPolicy; plan?: unknown };

const TLS_ORDER: TlsPolicy[] = ['none', 'may', 'encrypt', 'verify'];
function stricter(a: TlsPolicy | undefined, b: TlsPolicy | undefined): TlsPolicy | undefined {
  if (!a || !b) return a ?? b;
  return TLS_ORDER.indexOf(a) >= TLS_ORDER.indexOf(b) ? a : b;
}

/**
 * Thrown by process() to refuse a message with a reply of its own (e.g. `554 5.7.5` for a
 * tunnel message that does not decrypt); anything else process() throws is a 451.
 */
export class MessageRefused extends Error {
  constructor(readonly reply: Reply) {
    super(replyText(reply));
  }
}

/** A reply we give upstream: smtp-server sends `responseCode` and the text (with its enhanced code). */
class SmtpReplyError extends Error {
  constructor(
    readonly responseCode: number,
    text: string,
  ) {
    super(text);
  }
}

const TEXT_MAX = 400;
function passOn(r: Reply): SmtpReplyError {
  // A next hop's 421 closes *its* session; passed on as is it would close the upstream's too (RFC 5321 §3.8).
  return new SmtpReplyError(r.code === 421 ? 451 : r.code, replyText(r).slice(0, TEXT_MAX) || 'Error');
}
function reply(code: number, text: string): Reply {
  return { code, lines: [text] };
}

const RELAY_DENIED = reply(550, '5.7.1 Relaying denied');
const OTHER_ROUTE = reply(452, '4.5.3 Too many recipients for this transaction (another route); send the rest in a new one');
const UNREACHABLE = reply(451, '4.4.1 Next hop unreachable, try again later');
const CONNECTION_LOST = reply(451, '4.4.2 Next hop connection lost, try again later');
const ROUTING_FAILED = reply(451, '4.4.3 Routing failure, try again later');
const NO_ROUTE = reply(550, '5.1.2 The recipient domain accepts no mail');
const BAD_ADDRESS = reply(501, '5.1.3 Bad recipient address syntax');
const NO_UTF8 = reply(550, '5.6.7 The next hop does not support SMTPUTF8');
const LOCAL_ERROR = reply(451, '4.3.0 Local error in processing, try again later');
const LOOP = reply(554, '5.4.6 Mail loop detected (too many Received headers)');
const TOO_BIG = reply(552, '5.3.4 Message too big');

/** The open connection to a next hop, kept for the session's following transactions. */
interface Hop {
  client: SmtpClient;
  /** host:port list it was chosen for. */
  hosts: string;
}

interface Tx {
  envelope: SMTPServerEnvelope;
  started: number;
  from: string;
  /** direction + hosts of the first accepted recipient: the transaction's route. */
  route?: string;
  direction?: Direction;
  /** RecipientDecision.plan of the first accepted recipient. */
  plan?: unknown;
  /** `route()` answers by direction and domain: one look-up (e.g. MX) per domain, not per recipient. */
  routes: Map<string, Promise<NextHop[]>>;
  /** The route whose next-hop transaction (MAIL accepted) is open on the session's hop. */
  open?: string;
  /** Routes that failed in this transaction, with the reply every recipient of theirs gets. */
  failed: Map<string, Reply>;
  /** The accepted recipients' next-hop connection broke: nothing more can succeed. */
  broken: boolean;
  rcpts: { to: string; code: number; text: string }[];
  accepted: string[];
  done: boolean;
}

interface Session {
  hop?: Hop;
  tx?: Tx;
  /** A next-hop RSET in flight after an upstream reset; the next RCPT waits for it. */
  settle: Promise<void>;
}

const NO_LOG: GatewayLogger = { info() {}, warn() {}, error() {} };

function matcher<T extends string>(x: readonly string[] | ((v: T) => boolean), make: (l: readonly string[]) => (v: T) => boolean) {
  return typeof x === 'function' ? x : make(x);
}

/** RFC 5322 §3.3 date-time, e.g. "Tue, 01 Jul 2003 10:52:37 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/** RFC 5321 §6.3: count the Received header fields of the header section (RFC 5322 §2.2). */
export function countReceived(message: Buffer): number {
  const end = message.indexOf('\r\n\r\n');
  const header = message.subarray(0, end < 0 ? Math.min(message.length, 256 * 1024) : end).toString('latin1');
  return header.split(/\r?\n/).filter((l) => /^received\s*:/i.test(l)).length;
}

export async function createGateway(opts: GatewayOptions): Promise<Gateway> {
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const timeouts: Timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const log = opts.logger ?? NO_LOG;
  const now = opts.now ?? Date.now;
  const name = opts.name ?? os.hostname();
  const ourDomain = matcher<Domain>(opts.ourDomains, domainMatcher);
  const internal = matcher<string>(opts.isInternal, ipMatcher);
  const tlsPair = opts.tls ?? (await selfSignedCertificate([name], new Date(now())));
  const sessions = new WeakMap<SMTPServerSession, Session>();
  const guard = new EdgeGuard('smtp', { maxConnections: limits.connections, ...opts.edge }, { metrics: opts.metrics, logger: log });

  const stats: GatewayStats = {
    connections: { total: 0, current: 0 },
    messages: {
      inbound: Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>,
      outbound: Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>,
    },
    recipients: { accepted: 0, refused: 0, deferred: 0, relayDenied: 0, otherRoute: 0 },
    nextHop: { connects: 0, connectFailures: 0, dataLatencyMs: { count: 0, sum: 0, max: 0 } },
  };

  const envelopeOf = (session: SMTPServerSession, tx: Tx): Envelope => ({
    session: session.id,
    direction: tx.direction!,
    from: tx.from,
    to: [...tx.accepted],
    remoteAddress: session.remoteAddress,
    helo: session.hostNameAppearsAs,
    secure: session.secure,
    smtpUtf8: tx.envelope.smtpUtf8 === true,
    bodyType: tx.envelope.bodyType === '8bitmime' ? '8bitmime' : '7bit',
    plan: tx.plan,
  });

  /** The one log line of a transaction (docs/smtp.md "Logs"). */
  function endTx(session: SMTPServerSession, tx: Tx, outcome: Outcome, up?: Reply, next?: Reply, extra: object = {}): void {
    if (tx.done) return;
    tx.done = true;
    if (tx.direction) stats.messages[tx.direction][outcome]++;
    const s = sessions.get(session);
    const entry = {
      session: session.id,
      remote: session.remoteAddress,
      helo: session.hostNameAppearsAs || undefined,
      tls: session.secure,
      direction: tx.direction,
      from: tx.from,
      rcpts: tx.rcpts,
      nextHop: tx.open ? s?.hop?.client.peer : undefined,
      nextHopTls: tx.open ? s?.hop?.client.secure : undefined,
      outcome,
      reply: up ? `${up.code} ${replyText(up)}` : undefined,
      nextHopReply: next ? `${next.code} ${replyText(next)}` : undefined,
      ms: now() - tx.started,
      ...extra,
    };
    if (outcome === 'failed') log.warn(entry, 'smtp transaction');
    else log.info(entry, 'smtp transaction');
  }

  function dropHop(s: Session): void {
    s.hop?.client.close();
    s.hop = undefined;
    if (s.tx) s.tx.open = undefined;
  }

  /** Ends the next-hop transaction (RSET), or the connection when RSET does not work. */
  async function resetHop(s: Session): Promise<void> {
    const hop = s.hop;
    if (!hop) return;
    const r = await hop.client.rset().catch(() => undefined);
    if (r?.code !== 250 && s.hop === hop) dropHop(s);
  }

  /** The upstream transaction ended by RSET, HELO/EHLO, STARTTLS, or the connection closing. */
  function upstreamReset(session: SMTPServerSession): void {
    const s = sessions.get(session);
    const tx = s?.tx;
    if (!s || !tx || tx.done) return;
    endTx(session, tx, 'aborted');
    s.tx = undefined;
    if (tx.open) s.settle = resetHop(s);
  }

  async function connectHop(s: Session, hops: NextHop[], hosts: string): Promise<Hop | Error> {
    if (s.hop && s.hop.hosts === hosts && s.hop.client.usable) return s.hop;
    if (s.hop) {
      void s.hop.client.quit();
      s.hop = undefined;
    }
    let last: Error = new MailmeshError('NEXT_HOP_UNAVAILABLE', 'no next hop');
    for (const h of hops) {
      try {
        const client = await SmtpClient.connect({
          host: h.host,
          port: h.port,
          helo: name,
          tls: h.tls,
          ca: h.ca,
          servername: h.servername,
          timeouts,
        });
        stats.nextHop.connects++;
        s.hop = { client, hosts };
        return s.hop;
      } catch (e) {
        stats.nextHop.connectFailures++;
        last = e as Error;
        log.warn({ nextHop: `${h.host}:${h.port}`, err: last.message }, 'next hop connection failed');
      }
    }
    return last;
  }

  /** MAIL FROM on the next hop with the upstream's parameters, as far as the next hop knows them. */
  function mailParams(client: SmtpClient, tx: Tx): string[] | Reply {
    const p: string[] = [];
    const args = tx.envelope.mailFrom ? tx.envelope.mailFrom.args : false;
    // RFC 1870 §3: the declared size; an estimate, the processed message may differ.
    if (args && typeof args.SIZE === 'string' && client.has('SIZE')) p.push(`SIZE=${args.SIZE}`);
    // RFC 6152 §2: BODY=8BITMIME only to a server that offers it.
    if (tx.envelope.bodyType === '8bitmime' && client.has('8BITMIME')) p.push('BODY=8BITMIME');
    // RFC 6531 §3.4: a SMTPUTF8 message must not go to a server without SMTPUTF8.
    if (tx.envelope.smtpUtf8) {
      if (!client.has('SMTPUTF8')) return NO_UTF8;
      p.push('SMTPUTF8');
    }
    return p;
  }

  /** Decides one recipient; resolves with the next hop's (or our) reply. */
  async function recipient(session: SMTPServerSession, s: Session, tx: Tx, to: string): Promise<Reply> {
    let domain: Domain;
    try {
      domain = parseAddress(to).domain;
    } catch {
      return BAD_ADDRESS;
    }
    const direction: Direction | undefined = ourDomain(domain) ? 'inbound' : internal(session.remoteAddress) ? 'outbound' : undefined;
    if (!direction) {
      stats.recipients.relayDenied++;
      return RELAY_DENIED;
    }
    let hops: NextHop[];
    let tag = '';
    let plan: unknown;
    try {
      const decision = opts.recipientPolicy ? await opts.recipientPolicy(domain, direction, tx.from, to) : {};
      if ('refuse' in decision) return decision.refuse;
      tag = decision.tag ?? '';
      plan = decision.plan;
      const key = `${direction} ${domain}`;
      let routed = tx.routes.get(key);
      if (!routed) tx.routes.set(key, (routed = Promise.resolve(opts.route(domain, direction))));
      hops = (await routed).map((h) => (decision.tls ? { ...h, tls: stricter(h.tls, decision.tls) } : h));
    } catch (e) {
      log.warn({ session: session.id, domain, err: (e as Error).message }, 'routing failed');
      return ROUTING_FAILED;
    }
    if (hops.length === 0) return NO_ROUTE;
    const hosts = hops.map((h) => `${h.host}:${h.port}${h.tls ? '/' + h.tls : ''}`).join(',');
    const route = `${direction} ${tag} ${hosts}`;
    // RFC 5321 §4.5.3.1.10: 452 for a recipient of another route; the client retries it later.
    if (tx.route !== undefined && tx.route !== route) {
      stats.recipients.otherRoute++;
      return OTHER_ROUTE;
    }
    if (tx.broken) return CONNECTION_LOST;
    const failed = tx.failed.get(route);
    if (failed) return failed;
    if (tx.open !== route) {
      // A next-hop transaction of another route with no accepted recipient yet: end it.
      if (tx.open !== undefined) await resetHop(s);
      tx.open = undefined;
      const hop = await connectHop(s, hops, hosts);
      if (hop instanceof Error) {
        tx.failed.set(route, UNREACHABLE);
        return UNREACHABLE;
      }
      const params = mailParams(hop.client, tx);
      if (!Array.isArray(params)) {
        tx.failed.set(route, params);
        return params;
      }
      const r = await hop.client.mail(tx.from, params);
      if (r.code !== 250) {
        tx.failed.set(route, r);
        return r;
      }
      tx.open = route;
    }
    const r = await s.hop!.client.rcpt(to);
    if (r.code >= 200 && r.code < 300) {
      tx.route = route;
      tx.direction = direction;
      if (tx.accepted.length === 0) tx.plan = plan;
      tx.accepted.push(to);
    }
    return r;
  }

  async function onRcptTo(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    const s = sessions.get(session)!;
    await s.settle;
    const tx = s.tx!;
    let r: Reply;
    try {
      r = await recipient(session, s, tx, address.address);
    } catch (e) {
      // A transport failure of the next hop (client.ts): the connection is gone.
      if (!isMailmeshError(e)) guard.fault(e, { session: session.id, where: 'rcpt' });
      dropHop(s);
      if (tx.route !== undefined) tx.broken = true;
      r = CONNECTION_LOST;
    }
    if (r.code < 200 || (r.code >= 300 && r.code < 400)) {
      // RFC 5321 §4.2.2 lists no 1yz/3yz reply to RCPT: the next hop is confused.
      dropHop(s);
      if (tx.route !== undefined) tx.broken = true;
      r = CONNECTION_LOST;
    }
    tx.rcpts.push({ to: address.address, code: r.code, text: replyText(r).slice(0, TEXT_MAX) });
    if (r.code < 300) {
      stats.recipients.accepted++;
      return;
    }
    if (r.code >= 500) stats.recipients.refused++;
    else stats.recipients.deferred++;
    throw passOn(r);
  }

  function readMessage(stream: SMTPServerDataStream): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= limits.size) chunks.push(c);
      });
      stream.on('error', () => resolve(undefined));
      stream.on('end', () => resolve(stream.sizeExceeded ? undefined : Buffer.concat(chunks)));
    });
  }

  async function runProcess(message: Buffer, env: Envelope): Promise<Buffer> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new MailmeshError('PROCESS_TIMEOUT', `after ${timeouts.process} ms`);
        ac.abort(e);
        reject(e);
      }, timeouts.process);
    });
    try {
      const out = await Promise.race([Promise.resolve().then(() => opts.process(message, env, ac.signal)), deadline]);
      return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    } finally {
      clearTimeout(timer);
    }
  }

  function receivedHeader(session: SMTPServerSession, tx: Tx): Buffer {
    // RFC 5321 §4.4: Received: from <helo> (<address-literal>) by <us> with <protocol> id <id>; <date>
    const from = `${session.hostNameAppearsAs || 'unknown'} ([${session.remoteAddress}])`;
    const proto = session.transmissionType || 'ESMTP';
    const rcpt = tx.accepted.length === 1 ? `\r\n\tfor <${tx.accepted[0]}>` : '';
    return Buffer.from(`Received: from ${from}\r\n\tby ${name} (mailmesh) with ${proto} id ${session.id}${rcpt};\r\n\t${rfc5322Date(now())}\r\n`);
  }

  /** The DATA step; resolves with the upstream reply text for 250, throws SmtpReplyError otherwise. */
  async function relay(session: SMTPServerSession, s: Session, tx: Tx, stream: SMTPServerDataStream): Promise<string> {
    const message = await readMessage(stream);
    if (!message) {
      // smtp-server answers 552 5.3.4 itself for an oversized message (rejectOversized).
      // Otherwise the upstream connection broke in the middle of the message.
      const r = stream.sizeExceeded ? TOO_BIG : LOCAL_ERROR;
      endTx(session, tx, stream.sizeExceeded ? 'too_big' : 'aborted', r);
      s.settle = resetHop(s);
      throw passOn(r);
    }
    const fail = (outcome: Outcome, r: Reply, next?: Reply, extra?: object): never => {
      endTx(session, tx, outcome, r, next, extra);
      throw passOn(r);
    };
    if (countReceived(message) > limits.hops) {
      s.settle = resetHop(s);
      fail('rejected', LOOP);
    }
    const hop = s.hop;
    if (tx.broken || !tx.open || !hop?.client.usable) fail('failed', LOCAL_ERROR, undefined, { err: 'next hop connection lost before DATA' });
    let out: Buffer;
    try {
      out = await runProcess(message, envelopeOf(session, tx));
    } catch (e) {
      s.settle = resetHop(s);
      if (e instanceof MessageRefused) return fail(e.reply.code >= 500 ? 'rejected' : 'deferred', e.reply, undefined, { err: e.message, size: message.length });
      const err = asMailmeshError(e);
      return fail('failed', LOCAL_ERROR, undefined, { err: err.message, code: err.code, size: message.length });
    }
    const body = opts.received === false ? out : Buffer.concat([receivedHeader(session, tx), out]);
    const t0 = now();
    let r: Reply;
    try {
      r = await hop!.client.data(body);
    } catch (e) {
      dropHop(s);
      return fail('failed', LOCAL_ERROR, undefined, { err: (e as Error).message, size: message.length });
    }
    const ms = now() - t0;
    const lat = stats.nextHop.dataLatencyMs;
    lat.count++;
    lat.sum += ms;
    lat.max = Math.max(lat.max, ms);
    opts.observeNextHopLatency?.(ms);
    const extra = { size: message.length, relayedSize: body.length, nextHopMs: ms };
    if (r.code >= 200 && r.code < 300) {
      const text = replyText(r).slice(0, TEXT_MAX) || 'OK';
      endTx(session, tx, 'relayed', { code: 250, lines: [text] }, r, extra);
      return text;
    }
    if (r.code < 400) {
      dropHop(s);
      return fail('failed', LOCAL_ERROR, r, extra);
    }
    // A refused message (also a refused DATA command) leaves the next hop in an unknown state: RSET it.
    s.settle = resetHop(s);
    return fail(r.code >= 500 ? 'rejected' : 'deferred', r, r, extra);
  }

  const server = new Listener({
    name,
    banner: 'mailmesh',
    key: tlsPair.key,
    cert: tlsPair.cert,
    size: limits.size,
    rejectOversized: true,
    maxClients: limits.connections,
    maxCommandLength: (opts.maxCommandLineBytes ?? 512) - 2,
    guard,
    maxRecipients: limits.recipients,
    // An MX listener: no AUTH, no reverse lookup (docs/architecture.md "Library notes").
    authOptional: true,
    disabledCommands: ['AUTH'],
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    socketTimeout: timeouts.idle,
    closeTimeout: timeouts.shutdown,
    logger: false,
    earlyTalkerCheck: opts.earlyTalkerCheck,
    onConnect(session, cb) {
      stats.connections.total++;
      stats.connections.current++;
      const s: Session = { settle: Promise.resolve() };
      sessions.set(session, s);
      // smtp-server replaces session.envelope on RSET, HELO/EHLO, STARTTLS and after DATA; that
      // is the one signal of an upstream reset it gives, so we watch the assignment.
      let envelope = session.envelope;
      Object.defineProperty(session, 'envelope', {
        configurable: true,
        enumerable: true,
        get: () => envelope,
        set: (v: SMTPServerEnvelope) => {
          envelope = v;
          upstreamReset(session);
        },
      });
      cb();
    },
    onMailFrom(address, session, cb) {
      const s = sessions.get(session)!;
      s.tx = { envelope: session.envelope, started: now(), from: address.address, failed: new Map(), routes: new Map(), broken: false, rcpts: [], accepted: [], done: false };
      cb();
    },
    onRcptTo(address, session, cb) {
      onRcptTo(address, session).then(
        () => cb(),
        (e: Error) => cb(e instanceof SmtpReplyError ? e : passOn(LOCAL_ERROR)),
      );
    },
    onData(stream, session, cb) {
      const s = sessions.get(session)!;
      relay(session, s, s.tx!, stream).then(
        (text) => cb(null, text),
        (e: Error) => {
          if (!(e instanceof SmtpReplyError)) guard.fault(e, { session: session.id, where: 'data' });
          cb(e instanceof SmtpReplyError ? e : passOn(LOCAL_ERROR));
        },
      );
    },
    onClose(session) {
      const s = sessions.get(session);
      if (!s) return; // refused before the greeting (maxClients)
      stats.connections.current--;
      upstreamReset(session);
      sessions.delete(session);
      if (s.hop) void s.settle.then(() => s.hop?.client.quit());
    },
  });
  // A connection's error ends that connection alone (smtp-server closes it); counted as a fault.
  // Socket errors (smtp-server tags them with remoteAddress) are counted by the guard already.
  server.on('error', (err: Error) => {
    if (!('remoteAddress' in err)) guard.fault(err, { where: 'listener' });
  });

  return {
    server,
    stats,
    listen() {
      return new Promise((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(opts.listen?.port ?? 25, opts.listen?.host ?? '127.0.0.1', () => {
          server.server.off('error', reject);
          resolve(server.server.address() as AddressInfo);
        });
      });
    },
    close() {
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
