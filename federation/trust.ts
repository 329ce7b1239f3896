import type { VerifiedKeys } from '../directory/signed.js';
import type { Pin } from './pin.js';

/**
 * Key trust (docs/federation.md "Key trust"): which discovered keys are authenticated, and by
 * what — DNSSEC-validated answers, pins taken from authenticated answers. Used by discovery and
 * by the gateway's `mode: require`.
 */

/**
 * What authenticates a discovered key against an attacker on the path (docs/federation.md):
 * local (our own), imported (an operator put it here), signed-record (a record signed by the
 * domain key, from a configured directory that checked the domain's proof), dnssec (every key
 * in a DNSSEC-validated answer or named by a validated pin), pinned (a pin taken from one of
 * those), unauthenticated (plain DNS or HTTPS lookups only; pins of such answers).
 */
export type KeyTrust = 'local' | 'imported' | 'signed-record' | 'dnssec' | 'pinned' | 'unauthenticated';

/** The trust levels that authenticate a key (`pinned` is only given for a pin of one of the others). */
const AUTHENTICATED: ReadonlySet<KeyTrust | undefined> = new Set<KeyTrust>(['local', 'imported', 'signed-record', 'dnssec', 'pinned']);

/** Is a discovered key authenticated (policy `mode: require` needs it)? Absent (unclassified) is not. */
export function isAuthenticated(trust: KeyTrust | undefined): boolean {
  return AUTHENTICATED.has(trust);
}

/** What vouches for keys read from DNS: validated TXT pins, validated OPENPGPKEY/SMIMEA answers. */
export interface DnsEvidence {
  pins: Pin[];
  pinsValidated: boolean;
  openpgpValidated?: boolean;
  smimeValidated?: boolean;
}

/**
 * dnssec when every key is vouched for by a DNSSEC-validated answer: its own OPENPGPKEY/SMIMEA
 * record, or a validated `_mailmesh` TXT pin that names its fingerprint; else unauthenticated.
 */
export function dnsTrust(keys: VerifiedKeys, e: DnsEvidence): KeyTrust {
  const pgp = keys.openpgp?.fingerprint;
  const smime = keys.smime?.fingerprint.toLowerCase();
  const pgpOk = !pgp || e.openpgpValidated || (e.pinsValidated && e.pins.some((p) => p.pgp === pgp));
  const smimeOk = !smime || e.smimeValidated || (e.pinsValidated && e.pins.some((p) => p.smime === smime));
  return (pgp || smime) && pgpOk && smimeOk ? 'dnssec' : 'unauthenticated';
}

/** Every key offered is the held key of its kind (the pinned keys, or another answer's). */
export function keysWithin(held: VerifiedKeys, keys: VerifiedKeys): boolean {
  const pgp = !keys.openpgp || keys.openpgp.fingerprint === held.openpgp?.fingerprint;
  const smime = !keys.smime || keys.smime.fingerprint === held.smime?.fingerprint;
  return !!(keys.openpgp || keys.smime) && pgp && smime;
}

/** A pin's keys are `pinned` (authenticated) when the answer they were pinned from was authenticated. */
export function pinTrust(pin: { trust?: KeyTrust }): KeyTrust {
  return isAuthenticated(pin.trust) ? 'pinned' : 'unauthenticated';
}
