import type { Domain } from '../directory/domain.js';
import type { GatewayEndpoints, TunnelFormat } from '../directory/record.js';
import { revokedBy, type VerifiedKeys, type VerifiedRecord } from '../directory/signed.js';
import type { Discovered, SourceName } from './discovered.js';
import type { Pin } from './pin.js';
import { fingerprints, keysToPin, smimeCaPin, smimeChange, type PinEntry, type PinViolation, type PreviousKeys } from './pins.js';
import type { KeyTrust } from './trust.js';

/**
 * The pin decisions of discovery (docs/architecture.md "Federation"): whether a source's answer
 * keeps to the peer's pin (trust on first use, then rollover rules), and the pin that an accepted
 * answer leaves. federation/discovery.ts asks the sources and takes these decisions on their answers.
 */

/** One source's answer, before the pin decides on it. */
export interface Candidate {
  keys: VerifiedKeys;
  verified?: VerifiedRecord;
  gateways?: GatewayEndpoints;
  formats?: TunnelFormat[];
  capabilities?: string[];
  source: SourceName;
  how: string;
  origin?: string;
  /** false: the domain's own `_mailmesh` TXT pins other keys. */
  ownPinOk: boolean;
  /** The domain's own `_mailmesh` pins it was checked against (for the text of a violation). */
  ownPins?: Pin[];
  /** What authenticates these keys by themselves (before any pin). */
  trust: KeyTrust;
}

/** The part of a pin check that names the key refused (federation/pins.ts PinViolation). */
export type Change = Pick<PinViolation, 'key' | 'pinned' | 'offered'> & { revoked?: boolean };

/**
 * accept / defer (another source may bring a signed record) / previous (a key the pin moved
 * away from, still served by a lagging source: not a change, and not taken back) / violation.
 */
type PinCheck = { decision: 'accept' | 'defer' | 'previous' } | { decision: 'violation'; change: Change };

/** How many revoked fingerprints a pin remembers (the latest). */
export const MAX_REVOKED = 64;

/**
 * accept: no pin yet, the pinned key, the announced next key, a record the pinned key also
 * signed, one that carries the pinned key's own revocation, or the key the administrator
 * accepts (`mailmesh pins accept`). defer: another key offered without a signed record (a later
 * source may bring one). previous: a key the pin moved away from. violation: a signed record
 * that shows none of those, or keys the domain's own `_mailmesh` TXT does not pin; with the
 * two keys that differ.
 */
export async function checkPin(pin: PinEntry | undefined, c: Candidate, now: Date, accept?: string): Promise<PinCheck> {
  if (!c.ownPinOk) return { decision: 'violation', change: ownPinChange(c) };
  if (accept !== undefined && offers(c.keys, accept)) return { decision: 'accept' };
  const openpgp = await checkOpenPgpPin(pin, c, now);
  if (openpgp === 'violation') return { decision: 'violation', change: { key: 'openpgp', pinned: pin?.keys.openpgp?.fingerprint ?? '-', offered: c.keys.openpgp?.fingerprint ?? '-' } };
  if (openpgp !== 'accept') return { decision: openpgp };
  // The S/MIME leaf and domain CA are pinned too, by the same rules (federation/pins.ts).
  const smime = smimeChange(pin, c.keys, !!c.verified);
  if (!smime) return { decision: 'accept' };
  return isPrevious(pin, c.keys.smime?.fingerprint, now) ? { decision: 'previous' } : { decision: 'violation', change: smime };
}

async function checkOpenPgpPin(pin: PinEntry | undefined, c: Candidate, now: Date): Promise<'accept' | 'defer' | 'previous' | 'violation'> {
  const pinned = pin?.keys.openpgp;
  const offered = c.keys.openpgp?.fingerprint;
  if (!pinned || !offered) return pinned && !offered ? 'defer' : 'accept';
  if (offered === pinned.fingerprint || offered === pin.next) return 'accept';
  if (isPrevious(pin, offered, now)) return 'previous';
  if (!c.verified) return 'defer';
  if (c.verified.signers.includes(pinned.fingerprint)) return 'accept';
  if ((await revokedBy(c.verified.payload.revocations, [pinned.armored], now)).length) return 'accept';
  return 'violation';
}

function isPrevious(pin: PinEntry | undefined, fingerprint: string | undefined, now: Date): boolean {
  return !!fingerprint && !!pin?.previous?.some((p) => Date.parse(p.until) > now.getTime() && fingerprints(p.keys).includes(fingerprint));
}

export function pinViolation(domain: Domain, c: Candidate, change: Change, now: Date): PinViolation {
  return { domain, ...change, source: `${c.source}${c.origin ? ` ${c.origin}` : ''}`, at: now.toISOString() };
}

/** Next and previous keys of a pin, as an answer carries them. */
export function pinLifecycle(pin: PinEntry, now: Date): Pick<Discovered, 'next' | 'previous'> {
  const previous = (pin.previous ?? []).filter((p) => Date.parse(p.until) > now.getTime()).map((p) => p.keys);
  return { ...(pin.nextKeys ? { next: pin.nextKeys } : {}), ...(previous.length ? { previous } : {}) };
}

/**
 * The pin of the accepted keys. Next keys: the verified record's `next`, else those the pin
 * remembered while its keys stay. Keys the pin moves away from stay in `previous` for
 * retainMs, unless revoked: a revoked OpenPGP key takes the S/MIME key pinned with it along
 * (a revocation replaces both).
 */
export function acceptedPin(pin: PinEntry | undefined, c: Candidate, trust: KeyTrust, revoked: Set<string>, now: Date, retainMs: number): PinEntry {
  const keys = keysToPin(pin, c.keys);
  const samePgp = keys.openpgp?.fingerprint === pin?.keys.openpgp?.fingerprint;
  const nextKeys = c.verified ? c.verified.next : samePgp ? pin?.nextKeys : undefined;
  const nextPgp = nextKeys?.openpgp ? { next: nextKeys.openpgp.fingerprint, nextArmored: nextKeys.openpgp.armored } : !c.verified && samePgp && pin?.next ? { next: pin.next, nextArmored: pin.nextArmored } : {};
  const nextSmime = c.verified ? nextKeys?.smime?.fingerprint : keys.smime?.fingerprint === pin?.nextSmime ? undefined : pin?.nextSmime;
  const gone: VerifiedKeys = {};
  if (pin?.keys.openpgp && !samePgp) gone.openpgp = pin.keys.openpgp;
  if (pin?.keys.smime && pin.keys.smime.fingerprint !== keys.smime?.fingerprint) gone.smime = pin.keys.smime;
  if (gone.openpgp && revoked.has(gone.openpgp.fingerprint) && gone.smime) revoked.add(gone.smime.fingerprint);
  if (gone.openpgp && revoked.has(gone.openpgp.fingerprint)) delete gone.openpgp;
  if (gone.smime && revoked.has(gone.smime.fingerprint)) delete gone.smime;
  const previous: PreviousKeys[] = (pin?.previous ?? []).filter((p) => Date.parse(p.until) > now.getTime() && !fingerprints(p.keys).some((f) => revoked.has(f)) && !fingerprints(p.keys).some((f) => fingerprints(keys).includes(f)));
  if (gone.openpgp || gone.smime) previous.push({ keys: gone, retired: now.toISOString(), until: new Date(now.getTime() + retainMs).toISOString() });
  return {
    keys,
    ...nextPgp,
    ...(nextSmime ? { nextSmime } : {}),
    ...(nextKeys && (nextKeys.openpgp || nextKeys.smime) ? { nextKeys } : {}),
    at: now.toISOString(),
    violations: pin?.violations ?? [],
    // The trust it was taken with; a key seen again unauthenticated keeps the pin's.
    trust: trust === 'pinned' ? pin?.trust : trust,
    ...(previous.length ? { previous } : {}),
    ...(revoked.size ? { revoked: [...revoked].slice(-MAX_REVOKED) } : {}),
  };
}

/** Does a candidate offer this fingerprint (OpenPGP, S/MIME leaf, or S/MIME CA key pin; lower-case)? */
export function offers(k: VerifiedKeys, fingerprint: string): boolean {
  return [...fingerprints(k), smimeCaPin(k.smime)].some((f) => f?.toLowerCase() === fingerprint);
}

/** The key the domain's own `_mailmesh` TXT pins and the one the candidate offers instead. */
function ownPinChange(c: Candidate): Change {
  const txt = (f: (p: Pin) => string | undefined) => (c.ownPins ?? []).map(f).filter((x): x is string => !!x);
  const pgp = c.keys.openpgp?.fingerprint;
  const pinnedPgp = txt((p) => p.pgp);
  const by = "(the domain's _mailmesh TXT)";
  if (pinnedPgp.length && !(pgp && pinnedPgp.includes(pgp))) return { key: 'openpgp', pinned: `${pinnedPgp.join(' or ')} ${by}`, offered: pgp ?? '-' };
  return { key: 'smime', pinned: `S/MIME ${txt((p) => p.smime).join(' or ') || '-'} ${by}`, offered: `S/MIME ${c.keys.smime?.fingerprint ?? '-'}` };
}
