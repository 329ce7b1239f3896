import type { Directory } from '../directory/directory.js';
import { parseAddress, type Domain } from '../directory/domain.js';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { followFromStart } from '../directory/follow.js';
import type { Metrics } from '../directory/metrics.js';
import type { DomainRecord, TunnelFormat } from '../directory/record.js';
import type { Discovered } from '../federation/discovery.js';
import { isAuthenticated } from '../federation/trust.js';
import { authorDomain } from './header.js';
import { aligned, chooseFormat, policyFor, triggered, type PolicySettings } from './policy.js';
import type { Reply } from './smtp/client.js';
import { domainMatcher, type Direction } from './smtp/route.js';
import { MessageRefused, type Envelope, type GatewayOptions, type RecipientDecision } from './smtp/smtp.js';
import { addAuthenticationResults, removeOurResults } from './tunnel/authresults.js';
import { classifyMessage, decryptTunnel, encryptTunnel, type DecryptResult, type OwnDomain } from './tunnel/tunnel.js';

/** What the gateway needs of discovery (federation/discovery.ts Discovery). */
export interface KeyDiscovery {
  discover(domain: string): Promise<Discovered>;
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
  | { kind: 'plain'; reason: string }
  | { kind: 'webmail' }
  | { kind: 'refuse'; reply: Reply };
/** What a transaction's recipients were accepted for (Envelope.plan). */
type OutboundPlan = Exclude<Plan, { kind: 'refuse' }>;

const r = (code: number, text: string): Reply => ({ code, lines: [text] });
const r550 = (text: string): Reply => r(550, `5.7.1 ${text}`);
/** RFC 3463 §3.8 X.7.5: one reply for every tunnel message that cannot be decrypted and authenticated. */
const UNAUTHENTICATED = r(554, '5.7.5 The tunnel message cannot be decrypted and authenticated (TUNNEL_UNAUTHENTICATED)');

/**
 * The mail side of the E-Mail VPN: per-recipient policy at RCPT time and per-message tunnel
 * crypto at DATA time, plugged into the queue-less SMTP core (gateway/smtp/smtp.ts).
 * Outbound: encrypt+sign to the peer domain's key (or fall back per policy). Inbound: decrypt,
 * verify against the sender domain's key, add Authentication-Results. Nothing is stored.
 */
export class MailPolicy {
  readonly #o: MailPolicyOptions;
  /** Our domains that have domain keys here (provenance local), kept current from the directory. */
  #own = new Map<Domain, DomainRecord>();
  readonly #extra: (d: Domain) => boolean;
  #stop: () => void = () => {};
  readonly #results;
  readonly #discoveries;

  private constructor(o: MailPolicyOptions) {
    this.#o = o;
    this.#extra = domainMatcher(o.extraDomains ?? []);
    this.#results = o.metrics?.counter('mailmesh_tunnel_results_total', 'Tunnel crypto results by direction, format and result');
    this.#discoveries = o.metrics?.counter('mailmesh_discovery_lookups_total', 'Key discovery lookups by cache state and source');
  }

  static async create(o: MailPolicyOptions): Promise<MailPolicy> {
    const p = new MailPolicy(o);
    const f = await followFromStart(o.directory, () => p.#reload(), (err) => o.logger?.warn({ err }, 'reloading our domains failed'));
    p.#stop = () => f.stop();
    return p;
  }

  async #reload(): Promise<void> {
    const own = new Map<Domain, DomainRecord>();
    for (const rec of await this.#o.directory.listDomains()) if (rec.provenance.source === 'local') own.set(rec.domain, rec);
    this.#own = own;
  }

  close(): void {
    this.#stop();
  }

  /** Recipients here are inbound (GatewayOptions.ourDomains). */
  readonly ourDomain = (d: Domain): boolean => this.#own.has(d) || this.#extra(d);

  async #discover(domain: Domain): Promise<Discovered> {
    const d = await this.#o.discovery.discover(domain);
    this.#discoveries?.inc({ cache: d.cache, source: d.provenance.source });
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
        return { kind: 'refuse', reply: r(451, `4.4.3 Key discovery for ${domain} failed, try again later`) };
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
    if (!usable && peer.provenance.trustPending) return { kind: 'refuse', reply: r(451, `4.4.3 No authenticated key for ${domain} yet (a source is unreachable), try again later`) };
    const format = usable ? chooseFormat(pol.format, peer.formats, peer.keys) : undefined;
    if (format && sender) return { kind: 'encrypt', format, sender, domain, peer };
    const why = !usable ? `no authenticated key for ${domain} (key trust ${peer.provenance.trust ?? 'unknown'})` : format ? `the sender domain has no domain key here` : `no key found for ${domain}`;
    if (pol.mode === 'require' || pol.fallback === 'reject') {
      return { kind: 'refuse', reply: r(550, `5.7.1 Encryption to ${domain} is required and not possible: ${why}`) };
    }
    if (pol.fallback === 'webmail') {
      // A configuration fault, not the message's: the upstream keeps it and retries.
      return this.#o.webmail ? { kind: 'webmail' } : { kind: 'refuse', reply: r(451, '4.3.5 WebMail fallback is not configured') };
    }
    return { kind: 'plain', reason: why };
  }

  /** Whether the store answers a ping within storeTimeoutMs. */
  async #storeAnswers(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), this.#o.storeTimeoutMs ?? 2000)));
    try {
      return await Promise.race([this.#o.directory.store.ping().then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** GatewayOptions.recipientPolicy: refuse at RCPT time what cannot go, keep one encryption target per transaction. */
  readonly recipientPolicy = async (domain: Domain, direction: Direction, from: string, to: string): Promise<RecipientDecision> => {
    // Keys and secrets live in the store: without it we could not process the message, so the
    // upstream keeps it and retries (RFC 5321 §4.2.1: 4yz is a transient failure).
    if (!(await this.#storeAnswers())) return { refuse: r(451, '4.3.0 The key store is unavailable, try again later') };
    if (direction === 'inbound') return {};
    const plan = await this.#plan(domain, from);
    if (plan.kind === 'refuse') return { refuse: plan.reply };
    if (plan.kind === 'encrypt') return { tag: `encrypt:${plan.format}:${domain}`, plan };
    // One WebMail message is sealed for one address: one recipient per transaction.
    if (plan.kind === 'webmail') return { tag: `webmail:${to.toLowerCase()}`, plan };
    return { tag: 'tls', tls: 'encrypt', plan };
  };

  /** GatewayOptions.process: the tunnel crypto for one message. */
  readonly process = async (message: Buffer, env: Envelope): Promise<Buffer> => {
    return env.direction === 'outbound' ? this.#outbound(message, env) : this.#inbound(message, env);
  };

  async #ownDomain(domain: Domain): Promise<OwnDomain> {
    const rec = this.#own.get(domain);
    if (!rec) throw new MailmeshError('DOMAIN_NOT_FOUND', domain);
    return { domain, keys: rec.keys, secrets: await this.#o.directory.getSecrets(domain) };
  }

  async #outbound(message: Buffer, env: Envelope): Promise<Buffer> {
    // Decided at RCPT time (recipientPolicy), for the route every recipient of the transaction shares.
    const plan = env.plan as OutboundPlan | undefined;
    if (!plan) throw new MailmeshError('INTERNAL', 'an outbound transaction without a plan');
    if (plan.kind === 'webmail') {
      this.#results?.inc({ direction: 'outbound', format: 'webmail', result: 'webmail' });
      return this.#o.webmail!.buildMail(message, env.from, env.to[0]!);
    }
    if (plan.kind === 'plain') {
      if (triggered(message, this.#o.policy.trigger)) {
        throw new MessageRefused(r(554, `5.7.1 The message asks for encryption, but ${plan.reason}`));
      }
      this.#results?.inc({ direction: 'outbound', format: 'none', result: 'plain' });
      return message;
    }
    if ((await classifyMessage(message)).kind === 'personal') {
      this.#results?.inc({ direction: 'outbound', format: 'none', result: 'personal' });
      return message; // end-to-end encrypted by the person: untouched (docs/architecture.md "Tunnel messages")
    }
    // The receiving gateway binds the signer to the From domain (docs/gateway.md "Inbound"): sign with
    // the author domain's key when it is one of ours, else with MAIL FROM's (the plan's sender).
    const author = authorDomain(message);
    const signer = author && this.#own.has(author) ? author : plan.sender;
    const out = await encryptTunnel(plan.format, message, await this.#ownDomain(signer), { domain: plan.domain, keys: plan.peer.keys, capabilities: plan.peer.capabilities }, {
      keepSubject: this.#o.policy.keepSubject,
      now: this.#o.clock?.(),
    });
    this.#results?.inc({ direction: 'outbound', format: plan.format, result: 'encrypted' });
    return out;
  }

  async #inbound(message: Buffer, env: Envelope): Promise<Buffer> {
    const domains = [...new Set(env.to.map((t) => parseAddress(t).domain))].filter((d) => this.#own.has(d));
    for (const d of domains) {
      const c = await classifyMessage(message, this.#own.get(d)!.keys);
      if (c.kind === 'tunnel') return this.#openTunnel(message, env, await this.#ownDomain(d), c.format);
    }
    this.#results?.inc({ direction: 'inbound', format: 'none', result: 'passed' });
    // RFC 8601 §5: nobody outside speaks for our authserv-id, in tunnel mail or not.
    return removeOurResults(message, this.#o.authservId);
  }

  /**
   * Decrypts a tunnel message, verifies it and binds the signer to the author
   * (docs/security/authenticity.md). The key asked for first is that of the From domain the
   * outer header names (else MAIL FROM's); while the signer is unknown, then the decrypted
   * From domain's and MAIL FROM's, each at most once: a valid signature by MAIL FROM's domain
   * under another author is a mismatch, not an unknown signer.
   */
  async #openTunnel(message: Buffer, env: Envelope, own: OwnDomain, format: string): Promise<Buffer> {
    const pol = this.#o.policy.inbound;
    const mailFrom = envelopeDomain(env.from);
    const first = authorDomain(message) ?? mailFrom;
    let best = await this.#decrypt(message, own, first, format);
    const author = authorDomain(best.result.inner);
    const tried = new Set([first]);
    for (const next of [author, mailFrom]) {
      if (best.result.signature !== 'unknown-signer') break;
      if (next === undefined || tried.has(next)) continue;
      tried.add(next);
      const again = await this.#decrypt(message, own, next, format);
      if (again.result.signature !== 'unknown-signer') best = again;
    }
    const res = best.result;
    const ok = res.signature === 'valid' && aligned(res.signerDomain, author, pol.authorAlignment);
    // EFAIL: content from a cipher without integrity is only as good as its signature, and every
    // way of failing gives the same reply (no oracle), whatever the policy says.
    if (!res.integrity && res.signature !== 'valid') throw this.#unauthenticated(format, `${res.cipher} content with signature ${res.signature}`);
    const outcome = ok ? 'signature-valid' : res.signature === 'valid' ? 'author-mismatch' : `signature-${res.signature}`;
    this.#results?.inc({ direction: 'inbound', format: res.format, result: outcome });
    if (res.signature === 'valid' && !ok) {
      if (pol.authorMismatch === 'reject') {
        const whose = author ? `the author domain ${author}` : 'a single From mailbox';
        throw new MessageRefused(r550(`Tunnel message refused: signed by ${res.signerDomain}, not by ${whose} (AUTHOR_MISMATCH)`));
      }
    } else {
      const rule = res.signature === 'invalid' ? pol.invalidSignature : res.signature === 'unknown-signer' ? pol.unknownSigner : res.signature === 'absent' ? pol.unsigned : 'mark';
      if (rule === 'reject') throw new MessageRefused(r550(`Tunnel message refused: signature ${res.signature}`));
    }
    const provenance = res.signerDomain ? best.peer?.provenance : undefined;
    return addAuthenticationResults(res.inner, this.#o.authservId, {
      ...res,
      author,
      aligned: ok,
      alignment: pol.authorAlignment,
      key: provenance?.trust ?? provenance?.source,
    });
  }

  /** Decrypts with our key and verifies with the key discovery finds for `domain`. */
  async #decrypt(message: Buffer, own: OwnDomain, domain: Domain | undefined, format: string): Promise<Attempt> {
    let peer: Discovered | undefined;
    try {
      peer = domain ? await this.#discover(domain) : undefined;
    } catch (e) {
      if (!isMailmeshError(e)) throw e;
      peer = undefined; // unknown signer, decided by policy
    }
    try {
      const result = await decryptTunnel(message, own, peer && domain ? { domain, keys: peer.keys } : undefined, { now: this.#o.clock?.() });
      return { result, domain, peer };
    } catch (e) {
      if (isMailmeshError(e) && e.code.startsWith('TUNNEL_')) throw this.#unauthenticated(format, e.message);
      throw e;
    }
  }

  /** The one refusal for every decrypt, parse and verify failure (the reason goes to the log only). */
  #unauthenticated(format: string, why: string): MessageRefused {
    this.#results?.inc({ direction: 'inbound', format, result: 'unauthenticated' });
    this.#o.logger?.warn({ err: new MailmeshError('TUNNEL_UNAUTHENTICATED', why).message }, 'tunnel message refused');
    return new MessageRefused(UNAUTHENTICATED);
  }

  /** The parts of GatewayOptions this policy provides. */
  gatewayHooks(): Pick<GatewayOptions, 'ourDomains' | 'recipientPolicy' | 'process'> {
    return { ourDomains: this.ourDomain, recipientPolicy: this.recipientPolicy, process: this.process };
  }
}

/** MAIL FROM's domain, if it has one. */
function envelopeDomain(from: string): Domain | undefined {
  try {
    return from ? parseAddress(from).domain : undefined;
  } catch {
    return undefined;
  }
}

/** One decryption and the key it was verified with. */
interface Attempt {
  result: DecryptResult;
  /** The domain whose key was asked for. */
  domain: Domain | undefined;
  peer: Discovered | undefined;
}
