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
}

export interface SignedRecord {
  payload: string;
  signature: string;
}

/** What a caller hands the store: the serial is the store's to set. */
export type RecordDraft = Omit<DomainRecord, 'serial'>;

/** A domain's private keys, kept only sealed under the master key. */
export interface DomainSecrets {
  openpgp?: { armored: string };
  smime?: { keyPkcs8Pem: string; caKeyPkcs8Pem?: string };
}

export function secretsContext(domain: Domain): string {
  return `domain-secrets:${domain}`;
}
