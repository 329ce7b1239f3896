import type { Domain } from '../directory/domain.js';
import type { GatewayEndpoints, TunnelFormat } from '../directory/record.js';
import type { VerifiedKeys } from '../directory/signed.js';
import type { PinViolation } from './pins.js';
import type { KeyTrust } from './trust.js';

/**
 * What discovery answers (federation/discovery.ts): a peer domain's keys with their provenance.
 * A module of its own so that the cache (federation/cache.ts) and the pin decisions
 * (federation/pincheck.ts) name the answer without importing the resolver, which imports them.
 */

/** Where an answer's keys came from. */
export type SourceName = 'local' | 'imported' | 'domain-dns' | 'domain-https' | 'domain-wkd' | 'directory-dns' | 'directory-https' | 'pinned' | 'none';

export interface Discovered {
  domain: Domain;
  keys: VerifiedKeys;
  gateways?: GatewayEndpoints;
  formats?: TunnelFormat[];
  /** From the signed record (directory/record.ts SMIME_AEAD); absent: none announced. */
  capabilities?: string[];
  /**
   * `trust`: what authenticates the keys (docs/federation.md "Key trust"); always set by Discovery.
   * `trustPending`: not authenticated, and a source that might have authenticated them failed
   * (`mode: require` answers 451, try again, rather than 550).
   */
  provenance: { source: SourceName; verified: string; origin?: string; at: string; trust?: KeyTrust; trustPending?: boolean };
  /** hit: from the cache; stale: every source failed and an expired answer (or the pin) is served. */
  cache: 'miss' | 'hit' | 'stale';
  /** A key change that was refused for this answer; `keys` are the pinned ones. */
  violation?: PinViolation;
  /** Keys the domain announced to replace `keys` (its signed record's `next`): they sign validly too. */
  next?: VerifiedKeys;
  /** Keys the domain replaced, within the retention window (keys.retainDays): they sign validly until then. */
  previous?: VerifiedKeys[];
  /**
   * No keys, because the domain revoked the pinned ones and no source offers a new key this peer
   * accepts yet: until this time (the revocation plus staleMaxMs) a new key is expected, and
   * mail waits for it (451) rather than going out unencrypted (docs/lifecycle.md "Peers").
   */
  awaitingKeysUntil?: string;
}
