import type { Domain } from './domain.js';

/** Public part of a domain's OpenPGP key. */
export interface OpenPgpKeyInfo {
  /** v4 fingerprint, 40 upper-case hex digits (RFC 4880 §12.2). */
  fingerprint: string;
  /** 16 upper-case hex digits, the low 64 bits of the fingerprint. */
  keyId: string;
  algorithm: string;
  /** The transferable public key, ASCII-armored (RFC 4880 §6.2, §11.1). */
  armored: string;
  created: string;
  expires: string | null;
  userIds: string[];
}

/** Public part of a domain's S/MIME certificate. */
export interface SmimeKeyInfo {
  /** SHA-256 of the leaf certificate's DER, lower-case hex. */
  fingerprint: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  /** PEM certificates, the leaf first, then its issuers up to the domain CA. */
  chain: string[];
}

export type TunnelFormat = 'pgp-mime' | 'smime';

/**
 * Capabilities a domain announces in its signed record, beyond `formats` (docs/tunnel.md):
 * 'smime-aes-256-gcm': its gateway reads S/MIME AuthEnvelopedData (RFC 5083) with AES-256-GCM
 * (RFC 5084), so peers send that instead of CBC EnvelopedData. Unknown values are ignored; a
 * record without the list (signed before it existed) announces none: CBC only.
 */
export const SMIME_AEAD = 'smime-aes-256-gcm';

/** What this software announces for a domain it holds the keys of. */
export function ownCapabilities(keys: DomainRecord['keys']): string[] {
  return keys.smime ? [SMIME_AEAD] : [];
}

export type RecordStatus = 'active' | 'stale' | 'deleted';
export type ProvenanceSource = 'local' | 'joined' | 'imported' | 'mirrored';

export interface Provenance {
  source: ProvenanceSource;
  /** How the record was verified when it entered this directory. */
  verified: string;
  /** Where it came from (a directory URL, a file name, an operator). */
  origin?: string;
  at: string;
}

export interface GatewayEndpoints {
  /** host[:port] of the gateway's SMTP listener(s) for tunnel mail. */
  smtp: string[];
  /** Base URL of the gateway's HTTPS face (WebMail, well-known files). */
  https?: string;
}

export interface DomainRecord {
  domain: Domain;
  keys: { openpgp?: OpenPgpKeyInfo; smime?: SmimeKeyInfo };
  gateways: GatewayEndpoints;
  formats: TunnelFormat[];
  /** Announced capabilities (SMIME_AEAD); absent in records signed before they existed. */
  capabilities?: string[];
  validity: { notBefore: string; notAfter: string | null };
  /** Grows with every write to the store; a store-wide counter, so `since=` sync works. */
  serial: number;
  updated: string;
  status: RecordStatus;
  provenance: Provenance;
  /**
   * The record as its domain signed it (docs/federation.md "Signed records"): `payload` is the
   * RFC 8785 canonical JSON of a RecordPayload, `signature` an armored detached OpenPGP
   * signature over its UTF-8 octets by the domain key (and, during a rollover, the old key too).
   */
  signed?: SignedRecord;
  /** false: kept for this directory's own use (imported third-party keys) and not published. Absent means published. */
  publish?: boolean;
  /**
   * Keys announced to replace `keys` (the signed payload's `next`, docs/lifecycle.md "Roll"):
   * published beside the current ones during the overlap, on every face.
   */
  next?: DomainRecord['keys'];
  /** A local domain's roll in its overlap: when it was announced and when the switch may happen. */
  rollover?: { announced: string; switchAfter: string };
  /**
   * The certificate revocation lists (RFC 5280 §5) of the domain's CAs, base64 DER, one per CA,
   * the newest CA's first, as signed in the payload's `crls`.
   */
  crls?: string[];
  /**
   * A key recovery this directory holds down (federation/recovery.ts, docs/lifecycle.md "Recover"):
   * the new keys' fingerprints, since when, and when it takes effect unless vetoed.
   */
  pendingRecovery?: { openpgp: string; smime?: string; since: string; effective: string };
}

export interface SignedRecord {
  payload: string;
  signature: string;
}

/** What a join did: stored the posted record, or (pending) held down a key recovery and kept the held record. */
export interface JoinAnswer {
  record: DomainRecord;
  /** A key recovery started or is pending (docs/lifecycle.md "Recover"): `record` is the held record, with `pendingRecovery`. */
  pending?: boolean;
  /** The very record was already held (a repeated post): nothing changed. */
  unchanged?: boolean;
}

/** What a caller hands the store: the serial is the store's to set. */
export type RecordDraft = Omit<DomainRecord, 'serial'>;

/** One set of private keys: the OpenPGP key, the S/MIME leaf key and the domain CA key. */
export interface KeySecrets {
  openpgp?: { armored: string };
  smime?: { keyPkcs8Pem: string; caKeyPkcs8Pem?: string };
}

/** Keys replaced by a roll or a revocation, kept to open mail still in flight (docs/lifecycle.md "Retention"). */
export interface RetainedKeys {
  keys: DomainRecord['keys'];
  secrets: KeySecrets;
  /** When they stopped being current. */
  retired: string;
  /** When their private keys are erased (retired + keys.retainDays). */
  until: string;
  /** Revoked (compromise): they still open mail in flight, but never sign or verify. */
  revoked?: boolean;
}

/** A domain's private keys, kept only sealed under the master key: the current ones, the announced next ones, the retained old ones. */
export interface DomainSecrets extends KeySecrets {
  next?: KeySecrets;
  retained?: RetainedKeys[];
}

export function secretsContext(domain: Domain): string {
  return `domain-secrets:${domain}`;
}
