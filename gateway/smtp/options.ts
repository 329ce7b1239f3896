import type { AddressInfo } from 'node:net';
import type { Domain } from '../../directory/domain.js';
import type { EdgeLimits } from '../../directory/edge.js';
import type { Metrics } from '../../directory/metrics.js';
import type { TlsHolder, TlsKeyPair } from '../../directory/tls.js';
import { DEFAULT_CLIENT_TIMEOUTS, type ClientTimeouts, type Reply, type TlsPolicy } from './client.js';
import type { Listener } from './listener.js';
import type { Direction, NextHop } from './route.js';

/**
 * The SMTP core's public shapes (docs/smtp.md "API"): the options of createGateway, the envelope
 * process() gets, limits, timeouts and counters. `Plan` is the routing policy's own type: what
 * recipientPolicy decided at RCPT time comes back, typed, in Envelope.plan at DATA time.
 */

/** What `process` and the log know about a transaction. */
export interface Envelope<Plan = unknown> {
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
  plan?: Plan;
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
  /** close() drains: a message in DATA gets this long to finish before 421 (smtp.drainSec). */
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
export const OUTCOMES: readonly Outcome[] = ['relayed', 'rejected', 'deferred', 'failed', 'too_big', 'aborted'];

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

export interface GatewayOptions<Plan = unknown> {
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
  recipientPolicy?(domain: Domain, direction: Direction, from: string, to: string): Promise<RecipientDecision<Plan>> | RecipientDecision<Plan>;
  /** The transformation (tunnel crypto). May throw: the upstream gets 451 and keeps the message. */
  process(message: Buffer, envelope: Envelope<Plan>, signal: AbortSignal): Promise<Buffer | Uint8Array>;
  /** Certificate for STARTTLS, or a holder to replace it at run time; a self-signed one for `name` is made when absent. */
  tls?: TlsKeyPair | TlsHolder;
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
  /** STARTTLS's certificate: `set` takes effect for the next handshake. */
  tls: TlsHolder;
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/**
 * `tls` raises the next hop's STARTTLS policy for this recipient (e.g. `encrypt` for the `tls`
 * fallback); `plan`, opaque to the SMTP core (typed by the policy), comes back in `Envelope.plan`, so what was decided at RCPT
 * time is not worked out again at DATA time.
 */
export type RecipientDecision<Plan = unknown> = { refuse: Reply } | { tag?: string; tls?: TlsPolicy; plan?: Plan };

/** Counters that start at zero. */
export function newStats(): GatewayStats {
  const outcomes = () => Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  return {
    connections: { total: 0, current: 0 },
    messages: { inbound: outcomes(), outbound: outcomes() },
    recipients: { accepted: 0, refused: 0, deferred: 0, relayDenied: 0, otherRoute: 0 },
    nextHop: { connects: 0, connectFailures: 0, dataLatencyMs: { count: 0, sum: 0, max: 0 } },
  };
}
