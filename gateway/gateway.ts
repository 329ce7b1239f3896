import type { Directory } from '../directory/directory.js';
import { parseAddress, type Domain } from '../directory/domain.js';
import { isMailmeshError, MailmeshError } from './errors.js';
import { followFromStart } from '../directory/follow.js';
import type { Metrics } from '../directory/metrics.js';
import type { DomainRecord, DomainSecrets, TunnelFormat } from '../directory/record.js';
import type { Discovered } from '../federation/discovery.js';
import { isAuthenticated } from '../federation/trust.js';
import { authorDomain } from './header.js';
import { chooseFormat, policyFor, triggered, type PolicySettings } from './policy.js';
import type { Reply } from './smtp/client.js';
import { domainMatcher, type Direction } from './smtp/route.js';
import { MessageRefused, smtpReply, type Envelope, type GatewayOptions, type RecipientDecision } from './smtp/smtp.js';
import { InboundTunnels, within } from './inbound.js';
import { classifyMessage, encryptTunnel, readTunnel, type KeyPair, type OwnDomain, type PeerDomain } from './tunnel/tunnel.js';

export { parseSeen, seenKey, type SeenByPeer } from './inbound.js';

/** What the gateway needs of discovery (federation/discovery.ts Discovery). */
export interface KeyDiscovery {
  discover(domain: string): Promise<Discovered>;
  /** Forgets a domain's cached answer, so that the next discover asks the sources. */
  forget?(domain: string): Promise<void>;
}

export interface MailPolicyOptions {
  directory: Directory;
  discovery: KeyDiscovery;
  policy: PolicySettings;
  /** The authserv-id of our Authentication-Results headers (RFC 8601 §2.5): our host name. */
  authservId: string;
  /** Domains handled as ours besides the directory's own (local) domains; `.example.org` = its subdomains (smtp.ourDomains). */
  extraDomains?: string[];
  metrics?: Metrics;
  logger?: { warn(o: object, m?: string): void; info(o: object, m?: string): void };
  clock?: () => Date;
  /** How long RCPT waits for the store to answer a ping before it answers 451 (default 2000 ms). */
  storeTimeoutMs?: number;
  /** Builds the Enhanced WebMail message for `fallback: webmail` (gateway/webmail/webmail.ts Webmail). */
  webmail?: { buildMail(original: Buffer, from: string, recipient: string): Promise<Buffer> };
}

/** What one outbound recipient domain gets. */
type Plan =
  | { kind: 'encrypt'; format: TunnelFormat; sender: Domain; domain: Domain; peer: Discovered }
  /** `tls`: the next hop's STARTTLS policy (RFC 3207): `encrypt` for fallback tls, `may` for opportunistic. */
  | { kind: 'plain'; reason: string; tls: 'encrypt' | 'may' }
  | { kind: 'webmail' }
  | { kind: 'refuse'; reply: Reply };
/** What a transaction's recipients were accepted for (Envelope.plan, GatewayOptions<OutboundPlan>). */
export type OutboundPlan = Exclude<Plan, { kind: 'refuse' }>;


/**
 * The mail side of the E-Mail VPN: per-recipient policy at RCPT time and per-message tunnel
 * crypto at DATA time, plugged into the queue-less SMTP core (gateway/smtp/smtp.ts).
 * Outbound: encrypt+sign to the peer domain's key (or fall back per policy). Inbound: decrypt,
 * verify against the sender domain's key, add Authentication-Results. Nothing is stored.
 */
export class MailPolicy {
  #o: MailPolicyOptions;
  /** Our domains that have domain keys here (provenance local), kept current from the directory. */
  #own = new Map<Domain, DomainRecord>();
  readonly #extra: (d: Domain) => boolean;
  #stop: () => void = () => {};
  readonly #results;
  readonly #discoveries;
  readonly #pinViolations;
  #follower?: { settled(): Promise<void> };
  readonly #inbound: InboundTunnels;

  private constructor(o: MailPolicyOptions) {
    this.#o = o;
    this.#extra = domainMatcher(o.extraDomains ?? []);
    this.#results = o.metrics?.counter('mailmesh_tunnel_results_total', 'Tunnel crypto results by direction, format and result', ['direction', 'format', 'result']);
    this.#discoveries = o.metrics?.counter('mailmesh_discovery_lookups_total', 'Key discovery lookups by cache state and source', ['cache', 'source']);
    this.#pinViolations = o.metrics?.counter('mailmesh_pin_violations_total', 'Key changes a pin refused (federation/pincheck.ts), by peer domain and key', ['domain', 'key']);
    const current = () => this.#o.policy;
    this.#inbound = new InboundTunnels({
      ...o,
      // The policy in effect now (setPolicy), not the one at construction.
      get policy() {
        return current();
      },
      store: o.directory.store,
      isOwn: (d) => this.#own.has(d),
      ownDomain: (d) => this.#ownDomain(d),
      discover: (d) => this.#discover(d),
      forget: o.discovery.forget?.bind(o.discovery),
      results: this.#results,
    });
  }

  static async create(o: MailPolicyOptions): Promise<MailPolicy> {
    const p = new MailPolicy(o);
    const f = await followFromStart(o.directory, () => p.#reload(), (err) => o.logger?.warn({ err }, 'reloading our domains failed'));
    p.#stop = () => f.stop();
    p.#follower = f;
    return p;
  }

  /** Resolves when every directory change seen so far (our domains, their next keys) is in effect. */
  async settled(): Promise<void> {
    await this.#follower?.settled();
  }

  async #reload(): Promise<void> {
    const own = new Map<Domain, DomainRecord>();
    for (const rec of await this.#o.directory.listDomains()) if (rec.provenance.source === 'local') own.set(rec.domain, rec);
    this.#own = own;
  }

  close(): void {
    this.#stop();
  }

  /** SIGHUP (docs/operations.md "Signals"): the next recipient and message follow this policy. */
  setPolicy(policy: PolicySettings): void {
    this.#o = { ...this.#o, policy };
  }

  /** Recipients here are inbound (GatewayOptions.ourDomains). */
  readonly ourDomain = (d: Domain): boolean => this.#own.has(d) || this.#extra(d);

  async #discover(domain: Domain): Promise<Discovered> {
    const d = await this.#o.discovery.discover(domain);
    this.#discoveries?.inc({ cache: d.cache, source: d.provenance.source });
    // Counted when found (a fresh lookup), not again for each cached answer that still carries it.
    if (d.violation && d.cache === 'miss') this.#pinViolations?.inc({ domain, key: d.violation.key ?? 'openpgp' });
    return d;
  }

  /** The plan for mail from `from` to a recipient domain. */
  async #plan(domain: Domain, from: string): Promise<Plan> {
    const pol = policyFor(this.#o.policy, domain);
    let peer: Discovered;
    try {
      peer = await this.#discover(domain);
    } catch (e) {
      if (isMailmeshError(e, 'LOOKUP_UNAVAILABLE') || isMailmeshError(e, 'STORE_UNAVAILABLE')) {
        // Never downgrade to plain text because a source is down: the upstream retries.
        return { kind: 'refuse', reply: smtpReply('LOOKUP_UNAVAILABLE', { domain }) };
      }
      throw e;
    }
    let sender: Domain | undefined;
    try {
      const s = from ? parseAddress(from).domain : undefined;
      sender = s && this.#own.has(s) ? s : undefined;
    } catch {
      sender = undefined;
    }
    // `require` takes only authenticated keys (docs/federation.md "Key trust"); any other is as good as none,
    // unless a source that might have authenticated it was down: then the upstream tries again.
    const usable = pol.mode !== 'require' || isAuthenticated(peer.provenance.trust);
    if (!usable && peer.provenance.trustPending) return { kind: 'refuse', reply: smtpReply('KEY_TRUST_PENDING', { domain }) };
    const format = usable ? chooseFormat(pol.format, peer.formats, peer.keys) : undefined;
    if (format && sender) return { kind: 'encrypt', format, sender, domain, peer };
    // The peer revoked its keys to replace them and no source shows us the new ones yet: the
    // upstream keeps the message and retries, never a downgrade to plain text (docs/lifecycle.md "Peers").
    if (!format && peer.awaitingKeysUntil) return { kind: 'refuse', reply: smtpReply('PEER_KEYS_PENDING', { domain }) };
    const why = !usable ? `no authenticated key for ${domain} (key trust ${peer.provenance.trust ?? 'unknown'})` : format ? `the sender domain has no domain key here` : `no key found for ${domain}`;
    if (pol.mode === 'require' || pol.fallback === 'reject') {
      return { kind: 'refuse', reply: smtpReply('ENCRYPTION_REQUIRED', { domain, why }) };
    }
    if (pol.fallback === 'webmail') {
      // A configuration fault, not the message's: the upstream keeps it and retries.
      return this.#o.webmail ? { kind: 'webmail' } : { kind: 'refuse', reply: smtpReply('WEBMAIL_NOT_CONFIGURED') };
    }
    return { kind: 'plain', reason: why, tls: pol.fallback === 'opportunistic' ? 'may' : 'encrypt' };
  }

  /** Whether the store answers a ping within storeTimeoutMs. */
  #storeAnswers(): Promise<boolean> {
    return within(this.#o.directory.ping().then(() => true, () => false), this.#o.storeTimeoutMs ?? 2000, false);
  }

  /** GatewayOptions.recipientPolicy: refuse at RCPT time what cannot go, keep one encryption target per transaction. */
  readonly recipientPolicy = async (domain: Domain, direction: Direction, from: string, to: string): Promise<RecipientDecision<OutboundPlan>> => {
    // Keys and secrets live in the store: without it we could not process the message, so the
    // upstream keeps it and retries (RFC 5321 §4.2.1: 4yz is a transient failure).
    if (!(await this.#storeAnswers())) return { refuse: smtpReply('STORE_UNAVAILABLE') };
    if (direction === 'inbound') return {};
    const plan = await this.#plan(domain, from);
    if (plan.kind === 'refuse') return { refuse: plan.reply };
    if (plan.kind === 'encrypt') return { tag: `encrypt:${plan.format}:${domain}`, plan };
    // One WebMail message is sealed for one address: one recipient per transaction.
    if (plan.kind === 'webmail') return { tag: `webmail:${to.toLowerCase()}`, plan };
    // The tag keeps recipients of either fallback in transactions of their own (smtp.nextHopTls still raises `may`).
    return { tag: plan.tls === 'may' ? 'opportunistic' : 'tls', tls: plan.tls, plan };
  };

  /** GatewayOptions.process: the tunnel crypto for one message. */
  readonly process = async (message: Buffer, env: Envelope<OutboundPlan>): Promise<Buffer> => {
    return env.direction === 'outbound' ? this.#outbound(message, env) : this.#inbound.open(message, env);
  };

  /**
   * Our domain's key ring (docs/lifecycle.md): the current keys, which alone sign, then the
   * announced next keys and the retained old ones, which open inbound mail too. A retained
   * entry whose private keys were erased stays, without them: mail to it is ours, but unreadable.
   */
  async #ownDomain(domain: Domain): Promise<OwnDomain> {
    if (!this.#own.has(domain)) throw new MailmeshError('DOMAIN_NOT_FOUND', domain);
    const { rec, secrets } = await this.#keyPair(domain);
    const { next, retained, openpgp, smime } = secrets;
    const others: KeyPair[] = [];
    if (rec.next) others.push({ keys: rec.next, secrets: next ?? {} });
    for (const k of retained ?? []) others.push({ keys: k.keys, secrets: k.secrets ?? {} });
    return { domain, keys: rec.keys, secrets: { openpgp, smime }, others };
  }

  /**
   * Our domain's record and secrets as one consistent pair: public keys that name the private
   * keys we sign with. Both are read from the store (the cached record follows the change feed,
   * late by up to a poll when a CLI in another process rolls or revokes), and a record and its
   * secrets are written in one atomic write under one serial: record, secrets, record again,
   * retried while the serial moved in between.
   */
  async #keyPair(domain: Domain): Promise<{ rec: DomainRecord; secrets: DomainSecrets }> {
    const dir = this.#o.directory;
    for (let attempt = 0; ; attempt++) {
      const rec = await dir.getRecord(domain);
      const secrets = await dir.getSecrets(domain);
      const again = await dir.getRecord(domain);
      if (again.serial === rec.serial) return { rec, secrets };
      if (attempt >= 4) throw new MailmeshError('SERIAL_CONFLICT', `${domain}'s keys changed while being read`);
    }
  }

  async #outbound(message: Buffer, env: Envelope<OutboundPlan>): Promise<Buffer> {
    // Decided at RCPT time (recipientPolicy), for the route every recipient of the transaction shares.
    const plan = env.plan;
    if (!plan) throw new MailmeshError('INTERNAL', 'an outbound transaction without a plan');
    if (plan.kind === 'webmail') {
      this.#results?.inc({ direction: 'outbound', format: 'webmail', result: 'webmail' });
      return this.#o.webmail!.buildMail(message, env.from, env.to[0]!);
    }
    if (plan.kind === 'plain') {
      if (triggered(message, this.#o.policy.trigger)) {
        throw new MessageRefused(smtpReply('ENCRYPTION_REQUESTED', { reason: plan.reason }));
      }
      this.#results?.inc({ direction: 'outbound', format: 'none', result: 'plain' });
      return message;
    }
    const read = readTunnel(message); // once: classification, author and encryption take this reading
    if ((await classifyMessage(read)).kind === 'personal') {
      this.#results?.inc({ direction: 'outbound', format: 'none', result: 'personal' });
      return message; // end-to-end encrypted by the person: untouched (docs/architecture.md "Tunnel messages")
    }
    // The receiving gateway binds the signer to the From domain (docs/gateway.md "Inbound"): sign with
    // the author domain's key when it is one of ours, else with MAIL FROM's (the plan's sender).
    const author = authorDomain(read.header);
    const signer = author && this.#own.has(author) ? author : plan.sender;
    // During the peer's announced roll, to its next keys too (docs/lifecycle.md "Peers"); signed with our current key.
    const recipient: PeerDomain = { domain: plan.domain, keys: plan.peer.keys, next: plan.peer.next, capabilities: plan.peer.capabilities };
    const out = await encryptTunnel(plan.format, read, await this.#ownDomain(signer), recipient, {
      keepSubject: this.#o.policy.keepSubject,
      now: this.#o.clock?.(),
    });
    this.#results?.inc({ direction: 'outbound', format: plan.format, result: 'encrypted' });
    return out;
  }

  /** The parts of GatewayOptions this policy provides. */
  gatewayHooks(): Pick<GatewayOptions<OutboundPlan>, 'ourDomains' | 'recipientPolicy' | 'process'> {
    return { ourDomains: this.ourDomain, recipientPolicy: this.recipientPolicy, process: this.process };
  }
}
