import type { SMTPServerEnvelope, SMTPServerSession } from 'smtp-server';
import type { Domain } from '../../directory/domain.js';
import type { EdgeGuard } from '../../directory/edge.js';
import type { Reply, SmtpClient } from './client.js';
import type { Envelope, GatewayLogger, GatewayOptions, GatewayStats, Limits, Timeouts } from './options.js';
import { smtpReply } from './replies.js';
import type { Direction, NextHop } from './route.js';

/** What every session of one gateway shares: the options, resolved once in createGateway. */
export interface Core<Plan> {
  opts: GatewayOptions<Plan>;
  limits: Limits;
  timeouts: Timeouts;
  log: GatewayLogger;
  now: () => number;
  /** Our host name: EHLO to the next hop, Received header. */
  name: string;
  /** The current date for the Received header (RFC 5322 §3.3 date-time). */
  date(): string;
  ourDomain(domain: Domain): boolean;
  internal(remoteAddress: string): boolean;
  stats: GatewayStats;
  guard: EdgeGuard;
}

/** A recipient's line in the transaction's log entry. */
export interface RcptLog {
  to: string;
  code: number;
  text: string;
}

/**
 * One upstream mail transaction (RFC 5321 §3.3: MAIL, RCPT…, DATA), from MAIL FROM to its
 * end. It holds what RCPT decided (route, direction, plan, accepted recipients) and which
 * next-hop transaction is open for it on the session's connection.
 */
export class Transaction<Plan> {
  readonly started: number;
  /** direction + tag + hosts of the first accepted recipient: the transaction's route. */
  route?: string;
  direction?: Direction;
  /** RecipientDecision.plan of the first accepted recipient. */
  plan?: Plan;
  /** `route()` answers by direction and domain: one look-up (e.g. MX) per domain, not per recipient. */
  readonly #routes = new Map<string, Promise<NextHop[]>>();
  /** The route whose next-hop transaction (MAIL accepted) is open on the session's hop. */
  open?: string;
  /** Routes that failed in this transaction, with the reply every recipient of theirs gets. */
  readonly failed = new Map<string, Reply>();
  /** The accepted recipients' next-hop connection broke: nothing more can succeed. */
  broken = false;
  readonly rcpts: RcptLog[] = [];
  readonly accepted: string[] = [];
  done = false;

  constructor(
    readonly envelope: SMTPServerEnvelope,
    readonly from: string,
    now: number,
  ) {
    this.started = now;
  }

  /** The next hops for a domain, asked of `route()` once per direction and domain. */
  routeFor(core: Core<Plan>, domain: Domain, direction: Direction): Promise<NextHop[]> {
    const key = `${direction} ${domain}`;
    let routed = this.#routes.get(key);
    if (!routed) this.#routes.set(key, (routed = Promise.resolve(core.opts.route(domain, direction))));
    return routed;
  }

  /** The next hop accepted `to`: the route, direction and (for the first) plan are the transaction's. */
  accept(to: string, route: string, direction: Direction, plan: Plan | undefined): void {
    this.route = route;
    this.direction = direction;
    if (this.accepted.length === 0) this.plan = plan;
    this.accepted.push(to);
  }

  /** The recipients' next-hop connection is gone: a transaction with accepted recipients cannot succeed. */
  lose(): void {
    if (this.route !== undefined) this.broken = true;
  }

  /** MAIL FROM on the next hop with the upstream's parameters, as far as the next hop knows them. */
  mailParams(client: SmtpClient): string[] | Reply {
    const p: string[] = [];
    const args = this.envelope.mailFrom ? this.envelope.mailFrom.args : false;
    // RFC 1870 §3: the declared size; an estimate, the processed message may differ.
    if (args && typeof args.SIZE === 'string' && client.has('SIZE')) p.push(`SIZE=${args.SIZE}`);
    // RFC 6152 §2: BODY=8BITMIME only to a server that offers it.
    if (this.envelope.bodyType === '8bitmime' && client.has('8BITMIME')) p.push('BODY=8BITMIME');
    // RFC 6531 §3.4: a SMTPUTF8 message must not go to a server without SMTPUTF8.
    if (this.envelope.smtpUtf8) {
      if (!client.has('SMTPUTF8')) return smtpReply('NEXT_HOP_NO_SMTPUTF8');
      p.push('SMTPUTF8');
    }
    return p;
  }

  /** What process() is told about the transaction. */
  envelopeFor(session: SMTPServerSession): Envelope<Plan> {
    return {
      session: session.id,
      direction: this.direction!,
      from: this.from,
      to: [...this.accepted],
      remoteAddress: session.remoteAddress,
      helo: session.hostNameAppearsAs,
      secure: session.secure,
      smtpUtf8: this.envelope.smtpUtf8 === true,
      bodyType: this.envelope.bodyType === '8bitmime' ? '8bitmime' : '7bit',
      plan: this.plan,
    };
  }

  /** Our trace field, put in front of the processed message. */
  received(session: SMTPServerSession, name: string, date: string): Buffer {
    // RFC 5321 §4.4: Received: from <helo> (<address-literal>) by <us> with <protocol> id <id>; <date>
    const from = `${session.hostNameAppearsAs || 'unknown'} ([${session.remoteAddress}])`;
    const proto = session.transmissionType || 'ESMTP';
    const rcpt = this.accepted.length === 1 ? `\r\n\tfor <${this.accepted[0]}>` : '';
    return Buffer.from(`Received: from ${from}\r\n\tby ${name} (mailmesh) with ${proto} id ${session.id}${rcpt};\r\n\t${date}\r\n`);
  }
}
