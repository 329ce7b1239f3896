import type { Domain } from '../directory/domain.js';
import type { DomainRecord, SignedRecord } from '../directory/record.js';
import { signPayload, VETO_TYPE } from '../directory/signed.js';
import { kvGetJson, kvPutJson, type KvDocuments } from '../directory/store/store.js';
import { sendJson, type Fetch } from './web.js';

/**
 * Key recovery (docs/lifecycle.md "Recover"): a domain that lost its private key posts a record
 * with a new key and proof of domain control for it (`_mailmesh` TXT). It has no continuity
 * with the held key, so a directory holds it down, as RFC 5011 §2.4.1 holds down a new DNSSEC
 * trust anchor: the held record stays served and shows the pending change (`pendingRecovery`),
 * the holder of the current key may veto it (a statement signed by that key), and only after
 * the hold-down does the new record replace the held one. Proof is checked again then.
 */

/** federation.recoveryHoldSec's default: 72 hours. */
export const DEFAULT_RECOVERY_HOLD_MS = 72 * 3600_000;

/** A recovery held down, as kept in the store's kv (`recovery:<domain>`). */
export interface PendingRecovery {
  /** The posted record, as signed by the new key. */
  signed: SignedRecord;
  /** The new OpenPGP fingerprint (upper-case hex). */
  openpgp: string;
  since: string;
  effective: string;
}

/** The pending recoveries and the vetoed keys of each domain, in the store's kv space. */
export class Recoveries {
  readonly #kv: KvDocuments;

  constructor(kv: KvDocuments) {
    this.#kv = kv;
  }

  get(domain: Domain): Promise<PendingRecovery | undefined> {
    return kvGetJson<PendingRecovery>(this.#kv, `recovery:${domain}`);
  }

  put(domain: Domain, p: PendingRecovery): Promise<void> {
    return kvPutJson(this.#kv, `recovery:${domain}`, p);
  }

  async drop(domain: Domain): Promise<void> {
    await this.#kv.kvDelete(`recovery:${domain}`);
  }

  /** OpenPGP fingerprints whose recovery the holder of the domain's key vetoed. */
  async vetoed(domain: Domain): Promise<string[]> {
    return (await kvGetJson<string[]>(this.#kv, `recovery-vetoed:${domain}`)) ?? [];
  }

  async veto(domain: Domain, fingerprint: string): Promise<void> {
    const list = await this.vetoed(domain);
    if (!list.includes(fingerprint)) await kvPutJson(this.#kv, `recovery-vetoed:${domain}`, [...list, fingerprint]);
  }
}

/** The record's `pendingRecovery`: what lookups, mirrors and doctor show of a pending recovery. */
export function shownRecovery(p: PendingRecovery, smime: string | undefined): NonNullable<DomainRecord['pendingRecovery']> {
  return { openpgp: p.openpgp, ...(smime ? { smime } : {}), since: p.since, effective: p.effective };
}

/** A duration as an operator reads it: whole hours as "72 h", else minutes, else seconds. */
export function holdText(ms: number): string {
  if (ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}

/** DOMAIN_HELD's detail for a member whose new key has no continuity with the held one: the two ways out. */
export function heldPath(domain: string, held: string | undefined, offered: string, holdMs: number): string {
  return (
    `${domain} is held by ${held ?? 'another key'}; the new key ${offered} is neither announced nor signed by it: ` +
    `roll with the old key (mailmesh domain roll on the domain's gateway), or, if the old key is lost, ` +
    `publish _mailmesh TXT naming the new key and post again: a recovery starts with a hold-down of ${holdText(holdMs)}`
  );
}

/**
 * The holder's side: a veto of the pending recovery to `fingerprint` (the new OpenPGP key), signed
 * by the held key (RFC 4880 §11.4 detached signature over RFC 8785 canonical JSON, like a leave),
 * posted as POST /v1/domains/{domain}/veto.
 */
export async function postVeto(directoryUrl: string, domain: string, fingerprint: string, privateArmored: string, now: Date, fetchImpl?: Fetch): Promise<DomainRecord> {
  const statement = await signPayload({ v: 1, type: VETO_TYPE, domain, fingerprint: fingerprint.toUpperCase(), issued: now.toISOString() }, [privateArmored], now);
  return (await sendJson('POST', `${directoryUrl.replace(/\/+$/, '')}/v1/domains/${encodeURIComponent(domain)}/veto`, statement, { fetch: fetchImpl })) as DomainRecord;
}
