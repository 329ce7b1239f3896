import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { parseAddress, type Domain } from '../../directory/domain.js';
import { MailmeshError, asMailmeshError, isMailmeshError } from '../errors.js';
import { SmtpClient, replyText, type Reply, type TlsPolicy } from './client.js';
import type { Outcome } from './options.js';
import { MessageRefused, TEXT_MAX, passOn, smtpReply } from './replies.js';
import type { Direction, NextHop } from './route.js';
import { Transaction, type Core } from './transaction.js';
import { countReceived } from '../header.js';

/**
 * One upstream SMTP session (docs/smtp.md "How a transaction flows"), with one method per
 * verb, as mox's smtpserver has cmdMail/cmdRcpt/cmdData: `mail`, `rcpt`, `data`, `reset`
 * (RSET, HELO/EHLO, STARTTLS), `close`. Each upstream transaction is mirrored by one on the
 * session's next-hop connection, which stays open for the session's next transactions.
 */

/** The open connection to a next hop, kept for the session's following transactions. */
interface Hop {
  client: SmtpClient;
  /** host:port list it was chosen for. */
  hosts: string;
}

/** What RCPT decided for a recipient before the next hop is asked. */
interface Routed<Plan> {
  direction: Direction;
  hops: NextHop[];
  tag: string;
  plan?: Plan;
}

const TLS_ORDER: TlsPolicy[] = ['none', 'may', 'encrypt', 'verify'];
function stricter(a: TlsPolicy | undefined, b: TlsPolicy | undefined): TlsPolicy | undefined {
  if (!a || !b) return a ?? b;
  return TLS_ORDER.indexOf(a) >= TLS_ORDER.indexOf(b) ? a : b;
}

export class Session<Plan> {
  #hop?: Hop;
  #tx?: Transaction<Plan>;
  /** A next-hop RSET in flight after an upstream reset; the next RCPT waits for it. */
  #settle: Promise<void> = Promise.resolve();

  /** onConnect: the session is counted. */
  constructor(
    private readonly core: Core<Plan>,
    private readonly session: SMTPServerSession,
  ) {
    core.stats.connections.total++;
    core.stats.connections.current++;
  }

  /** MAIL FROM (RFC 5321 §4.1.1.2): a transaction begins; nothing is opened on the next hop yet. */
  mail(address: SMTPServerAddress): void {
    this.#tx = new Transaction(this.session.envelope, address.address, this.core.now());
  }

  /** RCPT TO (RFC 5321 §4.1.1.3): resolves for 2yz; otherwise throws the reply (SmtpReplyError) for smtp-server. */
  async rcpt(address: SMTPServerAddress): Promise<void> {
    await this.#settle;
    const tx = this.#tx!;
    const stats = this.core.stats.recipients;
    let r: Reply;
    try {
      r = await this.#recipient(tx, address.address);
    } catch (e) {
      // A transport failure of the next hop (client.ts): the connection is gone.
      if (!isMailmeshError(e)) this.core.guard.fault(e, { session: this.session.id, where: 'rcpt' });
      r = this.#lost(tx);
    }
    // RFC 5321 §4.2.2 lists no 1yz/3yz reply to RCPT: the next hop is confused.
    if (r.code < 200 || (r.code >= 300 && r.code < 400)) r = this.#lost(tx);
    tx.rcpts.push({ to: address.address, code: r.code, text: replyText(r).slice(0, TEXT_MAX) });
    if (r.code < 300) {
      stats.accepted++;
      return;
    }
    if (r.code >= 500) stats.refused++;
    else stats.deferred++;
    throw passOn(r);
  }

  /** DATA (RFC 5321 §4.1.1.4): resolves with the text of our 250; otherwise throws the reply. */
  async data(stream: SMTPServerDataStream): Promise<string> {
    const tx = this.#tx!;
    const message = await readMessage(stream, this.core.limits.size);
    if (!message) {
      // smtp-server answers 552 5.3.4 itself for an oversized message (rejectOversized).
      // Otherwise the upstream connection broke in the middle of the message.
      const r = smtpReply(stream.sizeExceeded ? 'MESSAGE_TOO_BIG' : 'INTERNAL');
      this.#settle = this.#resetHop();
      return this.#fail(tx, stream.sizeExceeded ? 'too_big' : 'aborted', r);
    }
    if (countReceived(message) > this.core.limits.hops) {
      this.#settle = this.#resetHop();
      return this.#fail(tx, 'rejected', smtpReply('MAIL_LOOP'));
    }
    const hop = this.#hop;
    if (tx.broken || !tx.open || !hop?.client.usable) return this.#fail(tx, 'failed', smtpReply('INTERNAL'), undefined, { err: 'next hop connection lost before DATA' });
    let out: Buffer;
    try {
      out = await this.#process(message, tx);
    } catch (e) {
      this.#settle = this.#resetHop();
      if (e instanceof MessageRefused) return this.#fail(tx, e.reply.code >= 500 ? 'rejected' : 'deferred', e.reply, undefined, { err: e.message, size: message.length });
      const err = asMailmeshError(e);
      return this.#fail(tx, 'failed', smtpReply('INTERNAL'), undefined, { err: err.message, code: err.code, size: message.length });
    }
    return this.#relay(tx, hop, out, message.length);
  }

  /** The upstream transaction ended by RSET, HELO/EHLO, STARTTLS, the end of DATA or the connection closing. */
  reset(): void {
    const tx = this.#tx;
    if (!tx || tx.done) return;
    this.#end(tx, 'aborted');
    this.#tx = undefined;
    if (tx.open) this.#settle = this.#resetHop();
  }

  /** The upstream connection closed: the transaction is aborted, the next hop gets QUIT. */
  close(): void {
    this.core.stats.connections.current--;
    this.reset();
    if (this.#hop) void this.#settle.then(() => this.#hop?.client.quit());
  }

  /** Decides one recipient; resolves with the next hop's (or our) reply. */
  async #recipient(tx: Transaction<Plan>, to: string): Promise<Reply> {
    let domain: Domain;
    try {
      domain = parseAddress(to).domain;
    } catch {
      return smtpReply('ADDRESS_INVALID');
    }
    const routed = await this.#route(tx, domain, to);
    if (!('hops' in routed)) return routed;
    const { direction, hops, tag, plan } = routed;
    if (hops.length === 0) return smtpReply('DOMAIN_NO_MAIL');
    const hosts = hops.map((h) => `${h.host}:${h.port}${h.tls ? '/' + h.tls : ''}`).join(',');
    const route = `${direction} ${tag} ${hosts}`;
    // RFC 5321 §4.5.3.1.10: 452 for a recipient of another route; the client retries it later.
    if (tx.route !== undefined && tx.route !== route) {
      this.core.stats.recipients.otherRoute++;
      return smtpReply('ROUTE_OTHER');
    }
    if (tx.broken) return smtpReply('NEXT_HOP_LOST');
    const failed = tx.failed.get(route) ?? (tx.open === route ? undefined : await this.#openRoute(tx, route, hops, hosts));
    if (failed) return failed;
    const r = await this.#hop!.client.rcpt(to);
    if (r.code >= 200 && r.code < 300) tx.accept(to, route, direction, plan);
    return r;
  }

  /** Direction (RFC 5321 §3.6 relaying rules), the routing policy and the next hops of one recipient. */
  async #route(tx: Transaction<Plan>, domain: Domain, to: string): Promise<Routed<Plan> | Reply> {
    const { core } = this;
    const direction: Direction | undefined = core.ourDomain(domain) ? 'inbound' : core.internal(this.session.remoteAddress) ? 'outbound' : undefined;
    if (!direction) {
      core.stats.recipients.relayDenied++;
      return smtpReply('RELAY_DENIED');
    }
    try {
      const decision = core.opts.recipientPolicy ? await core.opts.recipientPolicy(domain, direction, tx.from, to) : {};
      if ('refuse' in decision) return decision.refuse;
      const hops = (await tx.routeFor(core, domain, direction)).map((h) => (decision.tls ? { ...h, tls: stricter(h.tls, decision.tls) } : h));
      return { direction, hops, tag: decision.tag ?? '', plan: decision.plan };
    } catch (e) {
      core.log.warn({ session: this.session.id, domain, err: (e as Error).message }, 'routing failed');
      return smtpReply('ROUTING_FAILED');
    }
  }

  /** Opens the next-hop transaction of a route (connect, MAIL FROM); a reply when that failed. */
  async #openRoute(tx: Transaction<Plan>, route: string, hops: NextHop[], hosts: string): Promise<Reply | undefined> {
    // A next-hop transaction of another route with no accepted recipient yet: end it.
    if (tx.open !== undefined) await this.#resetHop();
    tx.open = undefined;
    const hop = await this.#connect(hops, hosts);
    const params = hop ? tx.mailParams(hop.client) : smtpReply('NEXT_HOP_UNAVAILABLE');
    const r = Array.isArray(params) ? await hop!.client.mail(tx.from, params) : params;
    if (r.code !== 250) {
      tx.failed.set(route, r);
      return r;
    }
    tx.open = route;
    return undefined;
  }

  /** The next hop failed during RCPT: its connection is dropped. */
  #lost(tx: Transaction<Plan>): Reply {
    this.#dropHop();
    tx.lose();
    return smtpReply('NEXT_HOP_LOST');
  }

  /** process() of one message, bounded by timeouts.process (its signal is aborted then). */
  async #process(message: Buffer, tx: Transaction<Plan>): Promise<Buffer> {
    const { opts, timeouts } = this.core;
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
      const out = await Promise.race([Promise.resolve().then(() => opts.process(message, tx.envelopeFor(this.session), ac.signal)), deadline]);
      return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The processed message to the next hop (RFC 5321 §4.1.1.4), with our Received header; its reply decides ours. */
  async #relay(tx: Transaction<Plan>, hop: Hop, out: Buffer, size: number): Promise<string> {
    const { core } = this;
    const body = core.opts.received === false ? out : Buffer.concat([tx.received(this.session, core.name, core.date()), out]);
    const t0 = core.now();
    let r: Reply;
    try {
      r = await hop.client.data(body);
    } catch (e) {
      this.#dropHop();
      return this.#fail(tx, 'failed', smtpReply('INTERNAL'), undefined, { err: (e as Error).message, size });
    }
    const ms = core.now() - t0;
    const lat = core.stats.nextHop.dataLatencyMs;
    lat.count++;
    lat.sum += ms;
    lat.max = Math.max(lat.max, ms);
    core.opts.observeNextHopLatency?.(ms);
    const extra = { size, relayedSize: body.length, nextHopMs: ms };
    if (r.code >= 200 && r.code < 300) {
      const text = replyText(r).slice(0, TEXT_MAX) || 'OK';
      this.#end(tx, 'relayed', { code: 250, lines: [text] }, r, extra);
      return text;
    }
    if (r.code < 400) {
      this.#dropHop();
      return this.#fail(tx, 'failed', smtpReply('INTERNAL'), r, extra);
    }
    // A refused message (also a refused DATA command) leaves the next hop in an unknown state: RSET it.
    this.#settle = this.#resetHop();
    return this.#fail(tx, r.code >= 500 ? 'rejected' : 'deferred', r, r, extra);
  }

  /** Ends the transaction with a reply other than 250: logged, then thrown for smtp-server. */
  #fail(tx: Transaction<Plan>, outcome: Outcome, r: Reply, next?: Reply, extra?: object): never {
    this.#end(tx, outcome, r, next, extra);
    throw passOn(r);
  }

  /** The one log line of a transaction (docs/smtp.md "Logs"). */
  #end(tx: Transaction<Plan>, outcome: Outcome, up?: Reply, next?: Reply, extra: object = {}): void {
    if (tx.done) return;
    tx.done = true;
    const { core, session } = this;
    if (tx.direction) core.stats.messages[tx.direction][outcome]++;
    const entry = {
      session: session.id,
      remote: session.remoteAddress,
      helo: session.hostNameAppearsAs || undefined,
      tls: session.secure,
      direction: tx.direction,
      from: tx.from,
      rcpts: tx.rcpts,
      nextHop: tx.open ? this.#hop?.client.peer : undefined,
      nextHopTls: tx.open ? this.#hop?.client.secure : undefined,
      outcome,
      reply: up ? `${up.code} ${replyText(up)}` : undefined,
      nextHopReply: next ? `${next.code} ${replyText(next)}` : undefined,
      ms: core.now() - tx.started,
      ...extra,
    };
    if (outcome === 'failed') core.log.warn(entry, 'smtp transaction');
    else core.log.info(entry, 'smtp transaction');
  }

  /** The session's next-hop connection for these hosts: the open one, or a new one to the first that answers. */
  async #connect(hops: NextHop[], hosts: string): Promise<Hop | undefined> {
    if (this.#hop && this.#hop.hosts === hosts && this.#hop.client.usable) return this.#hop;
    if (this.#hop) {
      void this.#hop.client.quit();
      this.#hop = undefined;
    }
    const { core } = this;
    for (const h of hops) {
      try {
        const client = await SmtpClient.connect({ host: h.host, port: h.port, helo: core.name, tls: h.tls, ca: h.ca, servername: h.servername, timeouts: core.timeouts });
        core.stats.nextHop.connects++;
        this.#hop = { client, hosts };
        return this.#hop;
      } catch (e) {
        core.stats.nextHop.connectFailures++;
        core.log.warn({ nextHop: `${h.host}:${h.port}`, err: (e as Error).message }, 'next hop connection failed');
      }
    }
    return undefined;
  }

  /** Ends the next-hop transaction (RSET), or the connection when RSET does not work. */
  async #resetHop(): Promise<void> {
    const hop = this.#hop;
    if (!hop) return;
    const r = await hop.client.rset().catch(() => undefined);
    if (r?.code !== 250 && this.#hop === hop) this.#dropHop();
  }

  #dropHop(): void {
    this.#hop?.client.close();
    this.#hop = undefined;
    if (this.#tx) this.#tx.open = undefined;
  }
}

/** The message as the upstream sent it (dot-stuffing undone); undefined when too big or cut off. */
function readMessage(stream: SMTPServerDataStream, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    stream.on('error', () => resolve(undefined));
    stream.on('end', () => resolve(stream.sizeExceeded ? undefined : Buffer.concat(chunks)));
  });
}
