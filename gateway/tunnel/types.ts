import type { Domain } from '../../directory/domain.js';
import type { DomainRecord, KeySecrets, TunnelFormat } from '../../directory/record.js';

/** Public keys with their private keys. */
export interface KeyPair {
  keys: DomainRecord['keys'];
  secrets: KeySecrets;
}

/** Our own member domain: its published keys and its private keys. */
export interface OwnDomain {
  domain: Domain;
  keys: DomainRecord['keys'];
  secrets: KeySecrets;
  /**
   * More keys that open inbound mail, never used to sign: the announced next keys and the
   * retained old ones (docs/lifecycle.md). The current keys come first, these after.
   */
  others?: KeyPair[];
}

/**
 * Our keys in the order they are tried on inbound mail: the current ones, then the others
 * (next, retained). A pair without a private key (a retained one whose secret was erased) still
 * tells us that mail is ours, though we can no longer open it.
 */
export function keyRing(own: OwnDomain): KeyPair[] {
  return [{ keys: own.keys, secrets: own.secrets }, ...(own.others ?? [])];
}

/** A peer member domain as the directory (or an import) describes it. */
export interface PeerDomain {
  domain: Domain;
  keys: DomainRecord['keys'];
  /** What its signed record announces (DomainRecord.capabilities); absent: none, S/MIME goes as AES-256-CBC. */
  capabilities?: readonly string[];
  /**
   * More keys of the peer whose signatures are its own (docs/lifecycle.md "Peers"): the next
   * keys it announced and the keys it replaced within the retention window. Encryption uses `keys`.
   */
  others?: DomainRecord['keys'][];
  /**
   * The keys the peer announced to replace `keys` (its record's `next`), while its roll is in
   * its overlap: PGP/MIME and S/MIME encrypt to both, so the message opens whichever the peer holds.
   */
  next?: DomainRecord['keys'];
}

/** Whether a sender domain has any key (current, next or previous): a signature by none of them is then `key-changed`. */
export function hasKeys(sender: PeerDomain | undefined): boolean {
  return !!sender && [sender.keys, ...(sender.others ?? [])].some((k) => k.openpgp || k.smime);
}

export interface EncryptOptions {
  /** Keep the original Subject on the outer message instead of `...`. */
  keepSubject?: boolean;
  /** Signature creation time (default: now). */
  now?: Date;
  /** Randomness for MIME boundaries (default: crypto.randomBytes). */
  random?: (n: number) => Buffer;
}

export interface DecryptOptions {
  /** The time at which signatures and certificates are checked (default: now). */
  now?: Date;
}

/** key-changed: signed by a key that is none of the sender domain's current, next or retained keys, while it has some. */
export type SignatureStatus = 'valid' | 'invalid' | 'absent' | 'unknown-signer' | 'key-changed';

export interface DecryptResult {
  format: TunnelFormat;
  /** The original message, bytes unchanged. */
  inner: Buffer;
  /**
   * valid: made by a key of the sender domain (current, next or previous); invalid: by such a
   * key (or one its domain CA certifies) but the check failed; absent: no signature;
   * key-changed: not by any key of the sender domain given, while it has some;
   * unknown-signer: no sender domain given, or it has no keys.
   */
  signature: SignatureStatus;
  /** OpenPGP: upper-case hex fingerprint; S/MIME: SHA-256 of the signer certificate, lower-case hex. */
  signerFingerprint?: string;
  /** The sender domain, when the signature is by its key. */
  signerDomain?: Domain;
  /**
   * The fingerprint of OUR key that opened the message (OpenPGP: the primary key's, upper-case
   * hex; S/MIME: SHA-256 of our certificate, lower-case hex): current, next or retained.
   */
  recipientFingerprint?: string;
  /** Why the signature is not valid, for logs. */
  detail?: string;
  /** The content encryption: an OpenSSL cipher name for S/MIME ('aes-256-gcm', 'aes-256-cbc', …), 'openpgp-seipd' for PGP/MIME. */
  cipher: string;
  /**
   * Whether the encryption itself protects the content against change: AEAD (RFC 5083/5084)
   * or OpenPGP's integrity-protected data (RFC 4880 §5.13). CBC has none (EFAIL).
   */
  integrity: boolean;
}
