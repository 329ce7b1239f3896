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
   * valid: made by the sender domain's key; invalid: by the sender domain's key (or a key it
   * certifies) but the check failed; absent: no signature; unknown-signer: not by a key of the
   * sender domain given (or no sender domain given).
   */
  signature: SignatureStatus;
  /** OpenPGP: upper-case hex fingerprint; S/MIME: SHA-256 of the signer certificate, lower-case hex. */
  signerFingerprint?: string;
  /** The sender domain, when the signature is by its key. */
  signerDomain?: Domain;
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
