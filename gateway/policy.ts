import type { TunnelFormat } from '../directory/record.js';
import { fieldValueOf, headerFields } from './header.js';

/**
 * Routing policy per destination domain (docs/architecture.md "The queue-less gateway"):
 * `auto` encrypts when a key is found, `require` refuses mail it cannot encrypt; without a key
 * the fallback decides: `tls` sends it unencrypted over a TLS-required next hop (STARTTLS,
 * RFC 3207, or a 451 when the hop does not offer it), `opportunistic` sends it unencrypted with
 * STARTTLS when the next hop offers it and in the clear when not (RFC 7435 opportunistic
 * security), `reject` refuses it, `webmail` sends the recipient an Enhanced WebMail message
 * (gateway/webmail/).
 */
export type PolicyMode = 'auto' | 'require';
export type Fallback = 'tls' | 'opportunistic' | 'reject' | 'webmail';

export interface DomainPolicy {
  mode: PolicyMode;
  fallback: Fallback;
  /** The tunnel format to send when the peer accepts both. */
  format: TunnelFormat;
}

/**
 * What happens to a tunnel message by its signature (docs/security/authenticity.md). Whatever
 * these say, content decrypted from a cipher without integrity (CBC) is refused unless its
 * signature is valid.
 */
export interface InboundPolicy {
  /** A tunnel message whose signature does not verify against the author domain's key. */
  invalidSignature: 'reject' | 'mark';
  /** A tunnel message signed by a key no source knows for the author domain. */
  unknownSigner: 'reject' | 'mark';
  /** A tunnel message without a signature (or with none we can read). */
  unsigned: 'reject' | 'mark';
  /** A valid signature by a domain that is not the From domain under `authorAlignment`. */
  authorMismatch: 'reject' | 'mark';
  /** strict: the signing domain is the From domain; relaxed: or a parent domain of it. */
  authorAlignment: 'strict' | 'relaxed';
  /** A signature by a key that is none of the sender domain's current, next or retained keys. */
  keyChanged: 'reject' | 'mark';
  /**
   * A tunnel message we cannot open (encrypted to a key we do not hold, or whose private key
   * was erased): reject (554 5.7.5, the default) or defer (451 4.7.5: the sender tries again,
   * and may have found our current key by then). Never delivered.
   */
  undecryptable?: 'reject' | 'defer';
}

/**
 * Whether a signing domain vouches for an author domain: the same domain, or (relaxed) a
 * parent of it. A subdomain never vouches for its parent, nor one sibling for another.
 */
export function aligned(signer: string | undefined, author: string | undefined, mode: InboundPolicy['authorAlignment']): boolean {
  if (!signer || !author) return false;
  return signer === author || (mode === 'relaxed' && author.endsWith('.' + signer));
}

export interface PolicySettings {
  default: DomainPolicy;
  /** Overrides per destination domain (`.example.org` also covers its subdomains). */
  domains: Record<string, Partial<DomainPolicy>>;
  /** A message whose Subject starts with this tag, or that has this header, must be encrypted. */
  trigger: { subjectTag: string; header: string };
  /** Keep the real Subject on the outer (encrypted) message instead of `...`. */
  keepSubject: boolean;
  inbound: InboundPolicy;
}

/** The policy for a destination domain: the most specific override wins. */
export function policyFor(s: PolicySettings, domain: string): DomainPolicy {
  const exact = s.domains[domain];
  if (exact) return { ...s.default, ...exact };
  const labels = domain.split('.');
  for (let i = 1; i < labels.length; i++) {
    const o = s.domains['.' + labels.slice(i).join('.')];
    if (o) return { ...s.default, ...o };
  }
  return s.default;
}

/** The format to send: the policy's choice when the peer takes it, else what the peer has a key for. */
export function chooseFormat(preferred: TunnelFormat, peerFormats: TunnelFormat[] | undefined, keys: { openpgp?: unknown; smime?: unknown }): TunnelFormat | undefined {
  const usable = (f: TunnelFormat) => (f === 'pgp-mime' ? !!keys.openpgp : !!keys.smime) && (!peerFormats?.length || peerFormats.includes(f));
  if (usable(preferred)) return preferred;
  const other: TunnelFormat = preferred === 'pgp-mime' ? 'smime' : 'pgp-mime';
  return usable(other) ? other : undefined;
}

/**
 * RFC 5322 header fields that force encryption for one message: a Subject starting with the
 * tag (case-insensitive), or the trigger header present with any value but `no`/`false`/`0`.
 * Fields are read by the linear splitter (gateway/header.ts), unfolded (§2.2.3).
 */
export function triggered(message: Buffer, trigger: PolicySettings['trigger']): boolean {
  const { fields } = headerFields(message);
  const value = (name: string) => {
    const f = fields.find((x) => x.key === name.toLowerCase());
    return f && fieldValueOf(message, f).replace(/^[ \t]+/, '');
  };
  const subject = value('subject') ?? '';
  if (trigger.subjectTag && subject.toLowerCase().startsWith(trigger.subjectTag.toLowerCase())) return true;
  if (!trigger.header) return false;
  const v = value(trigger.header)?.trim().toLowerCase();
  return v !== undefined && v !== 'no' && v !== 'false' && v !== '0';
}
