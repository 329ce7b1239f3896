import type { Directory } from '../directory/directory.js';
import { parseAddress, type Domain } from '../directory/domain.js';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { followFromStart } from '../directory/follow.js';
import type { Metrics } from '../directory/metrics.js';
import type { DomainRecord, DomainSecrets, TunnelFormat } from '../directory/record.js';
import type { Discovered } from '../federation/discovery.js';
import { isAuthenticated } from '../federation/trust.js';
import { authorDomain, headerFields } from './header.js';
import { aligned, chooseFormat, policyFor, triggered, type PolicySettings } from './policy.js';
import type { Reply } from './smtp/client.js';
import { domainMatcher, type Direction } from './smtp/route.js';
import { MessageRefused, type Envelope, type GatewayOptions, type RecipientDecision } from './smtp/smtp.js';
import { addAuthenticationResults, removeOurResults } from './tunnel/authresults.js';
import { classifyMessage, decryptTunnel, encryptTunnel, keyRing, TUNNEL_HEADER, type DecryptResult, type KeyPair, type OwnDomain, type PeerDomain } from './tunnel/tunnel.js';

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
  | { kind: 'plain'; reason: string }
  | { kind: 'webmail' }
  | { kind: 'refuse'; reply: Reply };
/** What a transaction's recipients were accepted for (Envelope.plan). */
type OutboundPlan = Exclude<Plan, { kind: 'refuse' }>;

const r = (code: number, text: string): Reply => ({ code, lines: [text] });
const r550 = (text: string): Reply => r(550, `5.7.1 ${text}`);
/** RFC 3463 §3.8 X.7.5: one reply for every tunnel message that cannot be decrypted and authenticated. */
const UNAUTHENTICATED = r(554, '5.7.5 The tunnel message cannot be decrypted and authenticated (TUNNEL_UNAUTHENTICATED)');
/** How often the record of which of our keys a peer encrypted to is rewritten when nothing changed. */
const SEEN_REWRITE_MS = 3_600_000;
/** The store kv key that records which of our keys each peer encrypted to (docs/lifecycle.md). */
export const seenKey = (ours: Domain): string => `lifecycle:seen:${ours}`;
/** What `seenKey` holds: per peer domain, the fingerprints of OUR keys that opened its latest message, per format. */
export type SeenByPeer = Record<string, { openpgp?: string; smime?: string; at: string }>;

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
  #follower?: { settled(): Promise<void> };
  /** What was last written to seenKey, per `ours peer kind`: fingerprint and when (ms). */
  readonly #seen = new Map<string, { fingerprint: string; at: number }>();
  /** One read-modify-write of seenKey at a time per own domain (in this process). */
  readonly #seenWrites = new Map<Domain, Promise<void>>();

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
  #storeAnswers(): Promise<boolean> {
    return within(this.#o.directory.store.ping().then(() => true, () => false), this.#o.storeTimeoutMs ?? 2000, false);
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
    // During the peer's announced roll, to its next keys too (docs/lifecycle.md "Peers"); signed with our current key.
    const recipient: PeerDomain = { domain: plan.domain, keys: plan.peer.keys, next: plan.peer.next, capabilities: plan.peer.capabilities };
    const out = await encryptTunnel(plan.format, message, await this.#ownDomain(signer), recipient, {
      keepSubject: this.#o.policy.keepSubject,
      now: this.#o.clock?.(),
    });
    this.#results?.inc({ direction: 'outbound', format: plan.format, result: 'encrypted' });
    return out;
  }

  /**
   * Inbound: a message encrypted to a key of ours (current, next or retained) is a tunnel
   * message and is opened; anything else passes, except a tunnel message (X-Mailmesh-Tunnel)
   * we cannot open: it is refused, never delivered as ciphertext with 250. That decision is made
   * from the key IDs and recipient infos alone, before any decryption, so its reply may name the
   * key; every failure after decrypting with our key has the one generic reply (EFAIL: no oracle).
   */
  async #inbound(message: Buffer, env: Envelope): Promise<Buffer> {
    const domains = [...new Set(env.to.map((t) => parseAddress(t).domain))].filter((d) => this.#own.has(d));
    const marked = domains.length > 0 && isMarkedTunnel(message);
    const plain = await classifyMessage(message);
    if (plain.kind === 'personal' && plain.format !== 'inline-pgp') {
      let recipients = plain.recipients;
      for (const d of domains) {
        const own = await this.#ownDomain(d);
        const ring = keyRing(own);
        const c = await classifyMessage(message, ring.map((p) => p.keys));
        if (c.kind === 'personal') {
          recipients = c.recipients;
          continue;
        }
        if (c.kind !== 'tunnel') continue;
        const held = c.keys.filter((i) => (c.format === 'pgp-mime' ? ring[i]!.secrets.openpgp : ring[i]!.secrets.smime));
        if (held.length === 0) {
          const erased = ring[c.keys[0]!]!.keys; // in practice a retained key whose private key was erased
          const fpr = c.format === 'pgp-mime' ? erased.openpgp?.fingerprint : erased.smime?.fingerprint;
          throw this.#undecryptable(c.format, env, new MailmeshError('TUNNEL_NO_KEY', `encrypted to ${d}'s key ${fpr}, whose private key this gateway no longer holds`));
        }
        return this.#openTunnel(message, env, own, c.format);
      }
      if (marked) {
        const why = recipients?.length
          ? new MailmeshError('TUNNEL_NOT_FOR_US', `encrypted to ${listKeys(plain.format, recipients)}, which this gateway does not hold`)
          : new MailmeshError('TUNNEL_MALFORMED', 'encrypted, but its encryption layer cannot be read');
        throw this.#undecryptable(plain.format, env, why);
      }
    } else if (marked) {
      throw this.#undecryptable('none', env, new MailmeshError('TUNNEL_MALFORMED', 'not PGP/MIME or S/MIME encrypted'));
    }
    this.#results?.inc({ direction: 'inbound', format: 'none', result: 'passed' });
    // RFC 8601 §5: nobody outside speaks for our authserv-id, in tunnel mail or not.
    return removeOurResults(message, this.#o.authservId);
  }

  /**
   * The refusal of a tunnel message we cannot open, decided before any decryption: the reason
   * (which may name the key) in the reply and the log; 554 5.7.5, or 451 4.7.5 under `defer`
   * (the sender tries again, and may have found our current key by then).
   */
  #undecryptable(format: string, env: Envelope, why: MailmeshError): MessageRefused {
    this.#results?.inc({ direction: 'inbound', format, result: 'undecryptable' });
    this.#o.logger?.warn({ err: why.message, code: why.code, from: env.from, to: env.to }, 'tunnel message refused');
    const text = `The tunnel message is ${why.detail ?? why.message} (${why.code})`;
    return new MessageRefused(this.#o.policy.inbound.undecryptable === 'defer' ? r(451, `4.7.5 ${text}`) : r(554, `5.7.5 ${text}`));
  }

  /**
   * Decrypts a tunnel message, verifies it and binds the signer to the author
   * (docs/security/authenticity.md). The key asked for first is that of the From domain the
   * outer header names (else MAIL FROM's); while the signer is not recognized, then the decrypted
   * From domain's and MAIL FROM's, each at most once: a valid signature by MAIL FROM's domain
   * under another author is a mismatch, not an unknown signer. A signer that is none of the
   * author domain's keys (current, next, previous) while it has keys is key-changed
   * (docs/lifecycle.md "Peers"); not being another domain's key makes it only unknown.
   */
  async #openTunnel(message: Buffer, env: Envelope, own: OwnDomain, format: string, fresh = false): Promise<Buffer> {
    const pol = this.#o.policy.inbound;
    const mailFrom = envelopeDomain(env.from);
    const first = authorDomain(message) ?? mailFrom;
    const attempts = [await this.#decrypt(message, own, first, format)];
    let best = attempts[0]!;
    const author = authorDomain(best.result.inner);
    const tried = new Set([first]);
    for (const next of [author, mailFrom]) {
      if (recognized(best)) break;
      if (next === undefined || tried.has(next)) continue;
      tried.add(next);
      const again = await this.#decrypt(message, own, next, format);
      attempts.push(again);
      if (recognized(again)) best = again;
    }
    if (!recognized(best)) {
      const forAuthor = author === undefined ? undefined : attempts.find((a) => a.domain === author);
      best = forAuthor ?? { ...best, result: { ...best.result, signature: 'unknown-signer' } };
    }
    // An unannounced key change (a revocation) is news a cached answer cannot know: forget the
    // cached answers and look once more before deciding; the fresh answer moves the pin by continuity.
    const cached = attempts.filter((a) => a.domain !== undefined && a.peer?.cache === 'hit');
    const forget = this.#o.discovery.forget?.bind(this.#o.discovery);
    if (!recognized(best) && !fresh && forget && cached.length > 0) {
      for (const a of cached) await forget(a.domain!);
      return this.#openTunnel(message, env, own, format, true);
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
      const rules = { invalid: pol.invalidSignature, 'unknown-signer': pol.unknownSigner, absent: pol.unsigned, 'key-changed': pol.keyChanged, valid: 'mark' } as const;
      if (rules[res.signature] === 'reject') {
        if (res.signature === 'key-changed') {
          const key = res.signerFingerprint ? `key ${res.signerFingerprint}` : (res.detail ?? 'an unknown key');
          // Temporary (RFC 3463 §3.8 X.7.5): the change may not have reached the directories yet, and the
          // upstream's retry then passes; a forgery never does, and expires in the sender's queue.
          throw new MessageRefused(r(451, `4.7.5 Tunnel message refused: signed by ${key}, which is none of the current, next or previous keys of ${author} (KEY_CHANGED)`));
        }
        throw new MessageRefused(r550(`Tunnel message refused: signature ${res.signature}`));
      }
    }
    if (res.signature === 'valid' && res.signerDomain && res.recipientFingerprint) await this.#noteSeen(own.domain, res.signerDomain, res.format, res.recipientFingerprint);
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
      // The peer's next and previous keys sign validly too (docs/lifecycle.md "Peers").
      const others = [peer?.next, ...(peer?.previous ?? [])].filter((k) => k !== undefined);
      const sender: PeerDomain | undefined = peer && domain ? { domain, keys: peer.keys, others } : undefined;
      const result = await decryptTunnel(message, own, sender, { now: this.#o.clock?.() });
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

  /**
   * Records which of our keys a peer encrypted to (docs/lifecycle.md: what `domain roll
   * --status` shows): read-modify-write of seenKey, only when the key changed or once an hour
   * per peer. A failure is logged; it never fails the mail (nor delays it past storeTimeoutMs).
   */
  async #noteSeen(ours: Domain, peer: Domain, format: TunnelFormat, fingerprint: string): Promise<void> {
    const kind = format === 'pgp-mime' ? 'openpgp' : 'smime';
    const memo = `${ours} ${peer} ${kind}`;
    const now = this.#o.clock?.() ?? new Date();
    const last = this.#seen.get(memo);
    if (last && last.fingerprint === fingerprint && now.getTime() - last.at < SEEN_REWRITE_MS) return;
    const store = this.#o.directory.store;
    const write = async () => {
      const all = parseSeen(await store.kvGet(seenKey(ours)));
      all[peer] = { ...all[peer], [kind]: fingerprint, at: now.toISOString() };
      await store.kvPut(seenKey(ours), JSON.stringify(all));
      this.#seen.set(memo, { fingerprint, at: now.getTime() });
    };
    const done = (this.#seenWrites.get(ours) ?? Promise.resolve()).then(write);
    this.#seenWrites.set(ours, done.catch(() => undefined));
    const failed = await within(done.then(() => undefined, (e: unknown) => e ?? new Error('failed')), this.#o.storeTimeoutMs ?? 2000, new Error('timed out'));
    if (failed) this.#o.logger?.warn({ err: failed instanceof Error ? failed.message : String(failed), domain: ours, peer }, 'recording the key a peer encrypted to failed');
  }

  /** The parts of GatewayOptions this policy provides. */
  gatewayHooks(): Pick<GatewayOptions, 'ourDomains' | 'recipientPolicy' | 'process'> {
    return { ourDomains: this.ourDomain, recipientPolicy: this.recipientPolicy, process: this.process };
  }
}

/** Whether a signature was matched to the keys of the domain asked for (valid or invalid), rather than to none. */
function recognized(a: Attempt): boolean {
  return a.result.signature !== 'unknown-signer' && a.result.signature !== 'key-changed';
}

/** Whether the header section carries the tunnel marker (gateway/tunnel/mime.ts outerHeader). */
function isMarkedTunnel(message: Buffer): boolean {
  const name = TUNNEL_HEADER.toLowerCase();
  return headerFields(message).fields.some((f) => f.key === name);
}

/** What a message is encrypted to, for a reply: at most three, in at most 300 characters (RFC 5321 §4.5.3.1.5: a reply line has 512 octets). */
function listKeys(format: string, ids: string[]): string {
  const named = format === 'pgp-mime' ? ids.map((id) => `key ${id}`) : ids; // S/MIME: "certificate serial … issued by …"
  const shown = named.slice(0, 3).join(', ') + (named.length > 3 ? ` and ${named.length - 3} more` : '');
  return shown.length > 300 ? `${shown.slice(0, 297)}...` : shown;
}

/** The value of `p`, or `otherwise` if it takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number, otherwise: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(otherwise), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** seenKey's value; anything unreadable counts as nothing recorded yet. */
function parseSeen(text: string | undefined): SeenByPeer {
  try {
    const v: unknown = text ? JSON.parse(text) : undefined;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as SeenByPeer;
  } catch {
    // rewritten below
  }
  return {};
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
