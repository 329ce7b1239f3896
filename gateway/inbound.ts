import { parseAddress, type Domain } from '../directory/domain.js';
import { isMailmeshError, MailmeshError } from './errors.js';
import type { Counter } from '../directory/metrics.js';
import type { TunnelFormat } from '../directory/record.js';
import { kvPutJson, type KvStore } from '../directory/store/store.js';
import type { Discovered } from '../federation/discovery.js';
import { authorDomain, headerFields, type HeaderSection } from './header.js';
import { aligned, type PolicySettings } from './policy.js';
import { deferred, MessageRefused, smtpReply } from './smtp/replies.js';
import type { Envelope } from './smtp/smtp.js';
import { addAuthenticationResults, removeOurResults } from './tunnel/authresults.js';
import { classifyMessage, decryptTunnel, keyRing, readTunnel, TUNNEL_HEADER, type DecryptResult, type OwnDomain, type PeerDomain, type TunnelMessage } from './tunnel/tunnel.js';

/** What the inbound half needs of the gateway (gateway/gateway.ts MailPolicy). */
export interface InboundContext {
  policy: PolicySettings;
  /** The authserv-id of our Authentication-Results headers (RFC 8601 §2.5). */
  authservId: string;
  /** The store kv that records which of our keys each peer encrypted to. */
  store: KvStore;
  isOwn(d: Domain): boolean;
  /** Our domain's key ring, its record and secrets read as one pair. */
  ownDomain(d: Domain): Promise<OwnDomain>;
  discover(d: Domain): Promise<Discovered>;
  /** Forgets a domain's cached discovery answer (KeyDiscovery.forget). */
  forget?: (d: Domain) => Promise<void>;
  results?: Counter;
  logger?: { warn(o: object, m?: string): void };
  clock?: () => Date;
  storeTimeoutMs?: number;
}

/** How often the record of which of our keys a peer encrypted to is rewritten when nothing changed. */
const SEEN_REWRITE_MS = 3_600_000;
/** The store kv key that records which of our keys each peer encrypted to (docs/lifecycle.md). */
export const seenKey = (ours: Domain): string => `lifecycle:seen:${ours}`;
/** What `seenKey` holds: per peer domain, the fingerprints of OUR keys that opened its latest message, per format. */
export type SeenByPeer = Record<string, { openpgp?: string; smime?: string; at: string }>;

/**
 * The inbound half of the mail side (docs/gateway.md "Inbound"): opens tunnel messages to our
 * keys, verifies them against the author domain's keys and marks them; refuses what it cannot open.
 */
export class InboundTunnels {
  readonly #c: InboundContext;
  /** What was last written to seenKey, per `ours peer kind`: fingerprint and when (ms). */
  readonly #seen = new Map<string, { fingerprint: string; at: number }>();
  /** One read-modify-write of seenKey at a time per own domain (in this process). */
  readonly #seenWrites = new Map<Domain, Promise<void>>();

  constructor(c: InboundContext) {
    this.#c = c;
  }

  /**
   * Inbound: a message encrypted to a key of ours (current, next or retained) is a tunnel
   * message and is opened; anything else passes, except a tunnel message (X-Mailmesh-Tunnel)
   * we cannot open: it is refused, never delivered as ciphertext with 250. That decision is made
   * from the key IDs and recipient infos alone, before any decryption, so its reply may name the
   * key; every failure after decrypting with our key has the one generic reply (EFAIL: no oracle).
   * The message is read once (readTunnel); every step below takes that reading.
   */
  async open(bytes: Buffer, env: Envelope): Promise<Buffer> {
    const message = readTunnel(bytes);
    const domains = [...new Set(env.to.map((t) => parseAddress(t).domain))].filter((d) => this.#c.isOwn(d));
    const marked = domains.length > 0 && isMarkedTunnel(message.header);
    const plain = await classifyMessage(message);
    if (plain.kind === 'personal' && plain.format !== 'inline-pgp') {
      let recipients = plain.recipients;
      for (const d of domains) {
        const own = await this.#c.ownDomain(d);
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
    this.#c.results?.inc({ direction: 'inbound', format: 'none', result: 'passed' });
    // RFC 8601 §5: nobody outside speaks for our authserv-id, in tunnel mail or not.
    return removeOurResults(message.header, this.#c.authservId);
  }

  /**
   * The refusal of a tunnel message we cannot open, decided before any decryption: the reason
   * (which may name the key) in the reply and the log; 554 5.7.5, or 451 4.7.5 under `defer`
   * (the sender tries again, and may have found our current key by then).
   */
  #undecryptable(format: string, env: Envelope, why: MailmeshError): MessageRefused {
    this.#c.results?.inc({ direction: 'inbound', format, result: 'undecryptable' });
    this.#c.logger?.warn({ err: why.message, code: why.code, from: env.from, to: env.to }, 'tunnel message refused');
    // The reason is ours (the keys it names are public); the code is one of the table's three.
    const reply = smtpReply(why, { reason: why.detail ?? why.message });
    return new MessageRefused(this.#c.policy.inbound.undecryptable === 'defer' ? deferred(reply) : reply);
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
  async #openTunnel(message: TunnelMessage, env: Envelope, own: OwnDomain, format: string, fresh = false): Promise<Buffer> {
    const pol = this.#c.policy.inbound;
    const mailFrom = envelopeDomain(env.from);
    const first = authorDomain(message.header) ?? mailFrom;
    const attempts = [await this.#decrypt(message, own, first, format)];
    let best = attempts[0]!;
    // Every attempt opens the same ciphertext with the same keys: the inner bytes are the same, only
    // the verification differs. So the inner header is split once, for the author and for the results.
    const inner = headerFields(best.result.inner);
    const author = authorDomain(inner);
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
    const forget = this.#c.forget;
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
    this.#c.results?.inc({ direction: 'inbound', format: res.format, result: outcome });
    if (res.signature === 'valid' && !ok) {
      if (pol.authorMismatch === 'reject') {
        const whose = author ? `the author domain ${author}` : 'a single From mailbox';
        throw new MessageRefused(smtpReply('AUTHOR_MISMATCH', { signer: res.signerDomain ?? '', whose }));
      }
    } else {
      const rules = { invalid: pol.invalidSignature, 'unknown-signer': pol.unknownSigner, absent: pol.unsigned, 'key-changed': pol.keyChanged, valid: 'mark' } as const;
      if (rules[res.signature] === 'reject') {
        if (res.signature === 'key-changed') {
          const key = res.signerFingerprint ? `key ${res.signerFingerprint}` : (res.detail ?? 'an unknown key');
          // Temporary (RFC 3463 §3.8 X.7.5): the change may not have reached the directories yet, and the
          // upstream's retry then passes; a forgery never does, and expires in the sender's queue.
          throw new MessageRefused(smtpReply('KEY_CHANGED', { key, author: author ?? '' }));
        }
        throw new MessageRefused(smtpReply('SIGNATURE_INVALID', { signature: res.signature }));
      }
    }
    if (res.signature === 'valid' && res.signerDomain && res.recipientFingerprint) await this.#noteSeen(own.domain, res.signerDomain, res.format, res.recipientFingerprint);
    const provenance = res.signerDomain ? best.peer?.provenance : undefined;
    return addAuthenticationResults(inner, this.#c.authservId, {
      ...res,
      author,
      aligned: ok,
      alignment: pol.authorAlignment,
      key: provenance?.trust ?? provenance?.source,
    });
  }

  /** Decrypts with our key and verifies with the key discovery finds for `domain`. */
  async #decrypt(message: TunnelMessage, own: OwnDomain, domain: Domain | undefined, format: string): Promise<Attempt> {
    let peer: Discovered | undefined;
    try {
      peer = domain ? await this.#c.discover(domain) : undefined;
    } catch (e) {
      if (!isMailmeshError(e)) throw e;
      peer = undefined; // unknown signer, decided by policy
    }
    try {
      // The peer's next and previous keys sign validly too (docs/lifecycle.md "Peers").
      const others = [peer?.next, ...(peer?.previous ?? [])].filter((k) => k !== undefined);
      const sender: PeerDomain | undefined = peer && domain ? { domain, keys: peer.keys, others } : undefined;
      const result = await decryptTunnel(message, own, sender, { now: this.#c.clock?.() });
      return { result, domain, peer };
    } catch (e) {
      if (isMailmeshError(e) && e.code.startsWith('TUNNEL_')) throw this.#unauthenticated(format, e.message);
      throw e;
    }
  }

  /** The one refusal for every decrypt, parse and verify failure (the reason goes to the log only). */
  #unauthenticated(format: string, why: string): MessageRefused {
    this.#c.results?.inc({ direction: 'inbound', format, result: 'unauthenticated' });
    this.#c.logger?.warn({ err: new MailmeshError('TUNNEL_UNAUTHENTICATED', why).message }, 'tunnel message refused');
    return new MessageRefused(smtpReply('TUNNEL_UNAUTHENTICATED'));
  }

  /**
   * Records which of our keys a peer encrypted to (docs/lifecycle.md: what `domain roll
   * --status` shows): read-modify-write of seenKey, only when the key changed or once an hour
   * per peer. A failure is logged; it never fails the mail (nor delays it past storeTimeoutMs).
   */
  async #noteSeen(ours: Domain, peer: Domain, format: TunnelFormat, fingerprint: string): Promise<void> {
    const kind = format === 'pgp-mime' ? 'openpgp' : 'smime';
    const memo = `${ours} ${peer} ${kind}`;
    const now = this.#c.clock?.() ?? new Date();
    const last = this.#seen.get(memo);
    if (last && last.fingerprint === fingerprint && now.getTime() - last.at < SEEN_REWRITE_MS) return;
    const store = this.#c.store;
    const write = async () => {
      const all = parseSeen(await store.kvGet(seenKey(ours)));
      all[peer] = { ...all[peer], [kind]: fingerprint, at: now.toISOString() };
      await kvPutJson(store, seenKey(ours), all);
      this.#seen.set(memo, { fingerprint, at: now.getTime() });
    };
    const done = (this.#seenWrites.get(ours) ?? Promise.resolve()).then(write);
    this.#seenWrites.set(ours, done.catch(() => undefined));
    const failed = await within(done.then(() => undefined, (e: unknown) => e ?? new Error('failed')), this.#c.storeTimeoutMs ?? 2000, new Error('timed out'));
    if (failed) this.#c.logger?.warn({ err: failed instanceof Error ? failed.message : String(failed), domain: ours, peer }, 'recording the key a peer encrypted to failed');
  }
}

/** Whether a signature was matched to the keys of the domain asked for (valid or invalid), rather than to none. */
function recognized(a: Attempt): boolean {
  return a.result.signature !== 'unknown-signer' && a.result.signature !== 'key-changed';
}

/** Whether the header section carries the tunnel marker (gateway/tunnel/mime.ts outerHeader). */
function isMarkedTunnel(header: HeaderSection): boolean {
  const name = TUNNEL_HEADER.toLowerCase();
  return header.fields.some((f) => f.key === name);
}

/** What a message is encrypted to, for a reply: at most three, in at most 300 characters (RFC 5321 §4.5.3.1.5: a reply line has 512 octets). */
function listKeys(format: string, ids: string[]): string {
  const named = format === 'pgp-mime' ? ids.map((id) => `key ${id}`) : ids; // S/MIME: "certificate serial … issued by …"
  const shown = named.slice(0, 3).join(', ') + (named.length > 3 ? ` and ${named.length - 3} more` : '');
  return shown.length > 300 ? `${shown.slice(0, 297)}...` : shown;
}

/** The value of `p`, or `otherwise` if it takes longer than `ms`. */
export async function within<T>(p: Promise<T>, ms: number, otherwise: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(otherwise), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What `seenKey` holds, read tolerantly: a missing or unreadable document is none (the next write replaces it). */
export function parseSeen(text: string | undefined): SeenByPeer {
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
