import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { SMTPServerSession } from 'smtp-server';
import type { Domain } from '../../directory/domain.js';
import { EdgeGuard } from '../../directory/edge.js';
import { selfSignedCertificate, TlsHolder } from '../../directory/tls.js';
import { Listener } from './listener.js';
import { DEFAULT_LIMITS, DEFAULT_TIMEOUTS, newStats, type Gateway, type GatewayLogger, type GatewayOptions } from './options.js';
import { SmtpReplyError, passOn, smtpReply } from './replies.js';
import { domainMatcher, ipMatcher } from './route.js';
import { Session } from './session.js';
import { rfc5322Date } from '../header.js';
import type { Core } from './transaction.js';

export type { Direction, NextHop } from './route.js';
export {
  DEFAULT_LIMITS,
  DEFAULT_TIMEOUTS,
  type Envelope,
  type Gateway,
  type GatewayLogger,
  type GatewayOptions,
  type GatewayStats,
  type Limits,
  type Outcome,
  type RecipientDecision,
  type Timeouts,
} from './options.js';
export { MessageRefused, smtpReply } from './replies.js';

/**
 * The queue-less SMTP relay (docs/architecture.md "The queue-less gateway", docs/smtp.md): one SMTP
 * listener; each upstream transaction is mirrored, command by command, by a transaction
 * with the next hop; the upstream gets 250 only after the next hop said 250 for the
 * processed message. Nothing is written to disk.
 *
 * The shape: createGateway resolves the options once (a `Core`) and wires smtp-server's hooks
 * to a `Session` per connection (session.ts: mail, rcpt, data, reset, close), which holds the
 * `Transaction` in progress (transaction.ts). Replies come from one table (replies.ts);
 * listener.ts is the one file that knows smtp-server's internals.
 */

const NO_LOG: GatewayLogger = { info() {}, warn() {}, error() {} };

function matcher<T extends string>(x: readonly string[] | ((v: T) => boolean), make: (l: readonly string[]) => (v: T) => boolean) {
  return typeof x === 'function' ? x : make(x);
}

/** The options resolved once: defaults, matchers, counters, the edge guard. */
function resolve<Plan>(opts: GatewayOptions<Plan>): Core<Plan> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const log = opts.logger ?? NO_LOG;
  const now = opts.now ?? Date.now;
  return {
    opts,
    limits,
    timeouts: { ...DEFAULT_TIMEOUTS, ...opts.timeouts },
    log,
    now,
    name: opts.name ?? os.hostname(),
    date: () => rfc5322Date(now()),
    ourDomain: matcher<Domain>(opts.ourDomains, domainMatcher),
    internal: matcher<string>(opts.isInternal, ipMatcher),
    stats: newStats(),
    guard: new EdgeGuard('smtp', { maxConnections: limits.connections, ...opts.edge }, { metrics: opts.metrics, logger: log }),
  };
}

export async function createGateway<Plan = unknown>(opts: GatewayOptions<Plan>): Promise<Gateway> {
  const core = resolve(opts);
  const { limits, timeouts, name, guard } = core;
  // STARTTLS's certificate, replaceable while the gateway runs (SIGHUP, ACME): new handshakes take the new one.
  const tls = opts.tls instanceof TlsHolder ? opts.tls : new TlsHolder(opts.tls ?? (await selfSignedCertificate([name], new Date(core.now()))));
  const tlsPair = tls.current();
  const sessions = new WeakMap<SMTPServerSession, Session<Plan>>();
  /** What smtp-server sends for a failed hook: our reply, or 451 4.3.0 for anything else thrown. */
  const upstream = (e: Error) => (e instanceof SmtpReplyError ? e : passOn(smtpReply('INTERNAL')));
  // mailmesh_smtp_replies_total{stage,class}: our answer to MAIL, RCPT and DATA (2xx when the hook succeeds).
  const replies = opts.metrics?.counter('mailmesh_smtp_replies_total', 'Replies to the upstream by stage (mail, rcpt, data) and class (2xx, 4xx, 5xx)', ['stage', 'class']);
  const answered = (stage: string, e?: SmtpReplyError) => (replies?.inc({ stage, class: `${e ? Math.floor(e.responseCode / 100) : 2}xx` }), e);

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
      sessions.set(session, new Session(core, session));
      cb();
    },
    onReset(session) {
      sessions.get(session)?.reset();
    },
    onMailFrom(address, session, cb) {
      sessions.get(session)!.mail(address);
      cb(answered('mail'));
    },
    onRcptTo(address, session, cb) {
      sessions.get(session)!.rcpt(address).then(
        () => cb(answered('rcpt')),
        (e: Error) => cb(answered('rcpt', upstream(e))),
      );
    },
    onData(stream, session, cb) {
      sessions.get(session)!.data(stream).then(
        (text) => (answered('data'), cb(null, text)),
        (e: Error) => {
          if (!(e instanceof SmtpReplyError)) guard.fault(e, { session: session.id, where: 'data' });
          cb(answered('data', upstream(e)));
        },
      );
    },
    onClose(session) {
      // No session: refused before the greeting (maxClients).
      sessions.get(session)?.close();
      sessions.delete(session);
    },
  });
  // A connection's error ends that connection alone (smtp-server closes it); counted as a fault.
  // Socket errors (smtp-server tags them with remoteAddress) are counted by the guard already.
  server.on('error', (err: Error) => {
    if (!('remoteAddress' in err)) guard.fault(err, { where: 'listener' });
  });
  const unsubscribe = tls.onChange((p) => server.updateSecureContext({ key: p.key, cert: p.cert }));

  return {
    server,
    stats: core.stats,
    tls,
    listen() {
      return new Promise((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(opts.listen?.port ?? 25, opts.listen?.host ?? '127.0.0.1', () => {
          server.server.off('error', reject);
          resolve(server.server.address() as AddressInfo);
        });
      });
    },
    /** Drains (listener.ts close): a message in DATA finishes within timeouts.shutdown. */
    close() {
      unsubscribe();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
