import type { Logger } from 'pino';
import type { Directory } from '../directory/directory.js';
import { parseDomain } from '../directory/domain.js';
import { asMailmeshError, isMailmeshError, MailmeshError } from '../directory/errors.js';
import { parseCanonical } from '../directory/jcs.js';
import { readOpenPgpKey } from '../directory/openpgp.js';
import type { DomainRecord, JoinAnswer, Provenance, RecordDraft, SignedRecord } from '../directory/record.js';
import { asSigned, checkRecordPayload, LEAVE_TYPE, revokedBy, signPayload, verifyLeave, verifySigned, verifyVeto, type VerifiedRecord } from '../directory/signed.js';
import type { Metrics } from '../directory/metrics.js';
import { guardedFetch } from './outbound.js';
import { every } from './timer.js';
import { proveControl, type DomainSources } from './proof.js';
import { DEFAULT_RECOVERY_HOLD_MS, heldPath, holdText, Recoveries, shownRecovery, type PendingRecovery } from './recovery.js';
import { sendJson, type Fetch } from './web.js';

/**
 * May `v` replace `held`? The same key always; another key only with continuity (docs/architecture.md
 * "Federation" rollover): it was announced as `next` by the held record, or the held key also
 * signed the new record, or the new record carries a revocation of the held key by itself.
 */
export async function continuity(heldArmored: string | undefined, heldNextArmored: string | undefined, v: VerifiedRecord, now: Date): Promise<string | undefined> {
  if (!heldArmored) return 'first key';
  const held = (await readOpenPgpKey(heldArmored)).getFingerprint().toUpperCase();
  const fpr = v.keys.openpgp.fingerprint;
  if (held === fpr) return 'same key';
  if (heldNextArmored && (await readOpenPgpKey(heldNextArmored)).getFingerprint().toUpperCase() === fpr) return `announced as next by ${held}`;
  if (v.signers.includes(held)) return `signed by the previous key ${held}`;
  if ((await revokedBy(v.payload.revocations, [heldArmored], now)).includes(held)) return `previous key ${held} revoked by itself`;
  return undefined;
}

export interface JoinOptions {
  directory: Directory;
  sources: DomainSources;
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** federation.join.allowPrivateAddresses: let proof fetches reach private and loopback addresses (default false). */
  allowPrivateAddresses?: boolean;
  /** federation.recoveryHoldSec in milliseconds: how long a key recovery is held down (default 72 h, federation/recovery.ts). */
  recoveryHoldMs?: number;
}

/** The stored form of a verified record: its keys, the announced next keys and the CRLs as signed. */
export function verifiedDraft(v: VerifiedRecord, signed: SignedRecord, provenance: Provenance, status: 'active' | 'stale' = 'active'): RecordDraft {
  return {
    domain: v.domain,
    keys: v.keys,
    ...(v.next ? { next: v.next } : {}),
    ...(v.payload.crls ? { crls: v.payload.crls } : {}),
    gateways: v.payload.gateways,
    formats: v.payload.formats,
    capabilities: v.payload.capabilities,
    validity: v.payload.validity,
    updated: provenance.at,
    status,
    provenance,
    signed,
  };
}

/**
 * The held record shows this pending recovery: its hold-down was public all along. A recovery kept
 * but not shown (the record was removed and joined again, or replaced by a mirror) counts for nothing.
 */
function shows(r: DomainRecord, p: PendingRecovery): boolean {
  return r.pendingRecovery?.openpgp === p.openpgp && r.pendingRecovery.since === p.since;
}

type ReverifyOutcome = { domain: string; status: 'active' | 'stale' | 'unchanged' | 'recovered' | 'recovery-dropped'; reason?: string };

/** The directory side of join, leave, key recovery and re-verification (docs/federation.md "Join and leave"). */
export class JoinService {
  readonly #o: JoinOptions;
  /** The domain's own sources, with the fetch that refuses special-purpose addresses (federation/outbound.ts). */
  readonly #sources: DomainSources;
  readonly #recoveries: Recoveries;
  readonly #holdMs: number;

  constructor(o: JoinOptions) {
    this.#o = o;
    this.#sources = { ...o.sources, fetch: guardedFetch({ resolver: o.sources.resolver, allowPrivateAddresses: o.allowPrivateAddresses ?? false }) };
    this.#recoveries = new Recoveries(o.directory.store);
    this.#holdMs = o.recoveryHoldMs ?? DEFAULT_RECOVERY_HOLD_MS;
  }

  /**
   * A refusal, logged with its detail. The domain is the caller's choice, so what the lookups found
   * out (fetch and DNS errors of any host) must not reach the caller: join is no probe of other
   * services. The HTTP face answers the code and the catalogue's text only (directory/errors.ts),
   * but for the codes whose detail is public: DOMAIN_HELD and RECOVERY_VETOED, this directory's own
   * state (public keys it serves), which says the way out.
   */
  #refusal(op: 'join' | 'leave' | 'veto', e: unknown): MailmeshError {
    const err = asMailmeshError(e);
    this.#o.logger?.warn({ op, code: err.code, detail: err.detail, ...(isMailmeshError(e) ? {} : { err: e }) }, `${op} refused`);
    return err;
  }

  /**
   * POST /v1/domains: verify the signed record (canonical JSON, keys, signature), check that it
   * may replace what is held (same key or a rollover), prove domain control, store it as `joined`.
   * A new key without continuity but with proof of control starts (or continues) a key recovery.
   */
  join(body: unknown): Promise<JoinAnswer> {
    return this.#refused('join', async () => {
      // The record is read, checked (a DNS proof takes a while) and written if its serial is still
      // the one read: a post that raced another (the CLI and serve posting the same change) is
      // checked again against what the other wrote, a few times, before SERIAL_CONFLICT.
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.#join(body);
        } catch (e) {
          if (!isMailmeshError(e, 'SERIAL_CONFLICT') || attempt >= 3) throw e;
        }
      }
    });
  }

  async #join(body: unknown): Promise<JoinAnswer> {
    const { directory } = this.#o;
    const now = directory.clock();
    const signed = asSigned(body);
    const payload = checkRecordPayload(parseCanonical(signed.payload));
    const existing = await directory.store.getRecord(parseDomain(payload.domain));
    const live = existing && existing.status !== 'deleted' ? existing : undefined;
    // The very record a join stored (verified then): a repeated post changes nothing. Other
    // sources (local, imported, mirrored) go the whole way, and are refused or replaced below.
    const same = live?.signed && live.signed.payload === signed.payload && live.signed.signature === signed.signature;
    if (same && live.provenance.source === 'joined') return { record: live, unchanged: true };
    const heldKey = live?.keys.openpgp?.armored;
    let v: VerifiedRecord;
    try {
      v = await verifySigned(signed, now, heldKey ? [heldKey] : []);
    } catch (e) {
      // docs/architecture.md "Revocation": the held key, revoked by itself, removes the domain's record.
      if (isMailmeshError(e, 'KEY_REVOKED') && heldKey && live && e.detail === live.keys.openpgp?.fingerprint) {
        const key = await readOpenPgpKey(payload.keys.openpgp ?? '');
        if (key.getFingerprint().toUpperCase() === e.detail && (await key.isRevoked(undefined, undefined, now))) {
          this.#o.logger?.info({ domain: live.domain, fingerprint: e.detail }, 'domain key revoked: record removed');
          return { record: await directory.removeDomain(live.domain) };
        }
      }
      throw e;
    }
    if (live && live.provenance.source !== 'joined' && live.provenance.source !== 'mirrored') {
      // DOMAIN_HELD's detail is shown to anyone who posts: it names no source (an imported record may be unpublished).
      throw new MailmeshError('DOMAIN_HELD', `${v.domain} is held by an operator of this directory (a join cannot replace it)`);
    }
    // A joined or mirrored record was verified when it was stored, so its payload parses.
    const heldPayload = live?.signed ? checkRecordPayload(parseCanonical(live.signed.payload)) : undefined;
    const how = await continuity(heldKey, heldPayload?.next?.openpgp, v, now);
    // Without continuity, the order of the two keys' records says nothing: a recovery, or a refusal.
    if (!how) return this.#recover(live!, v, signed, now);
    if (heldPayload && Date.parse(v.payload.issued) <= Date.parse(heldPayload.issued)) throw new MailmeshError('SIGNED_RECORD_MALFORMED', `${v.domain}: issued ${v.payload.issued} is not newer than the record held`);
    const proof = await proveControl(this.#sources, v.domain, v.keys);
    // A recovery pending for a key that now arrives with continuity has nothing left to hold down.
    const keep = live?.pendingRecovery && live.pendingRecovery.openpgp !== v.keys.openpgp.fingerprint ? { pendingRecovery: live.pendingRecovery } : {};
    if (live?.pendingRecovery && !keep.pendingRecovery) await this.#recoveries.drop(v.domain);
    const provenance: Provenance = { source: 'joined', verified: `signature by ${v.keys.openpgp.fingerprint} (${how}); ${proof}`, at: now.toISOString() };
    const record = await directory.putRecord({ ...verifiedDraft(v, signed, provenance), ...keep }, existing ? existing.serial : null);
    this.#o.logger?.info({ domain: record.domain, fingerprint: v.keys.openpgp.fingerprint, how, proof }, 'domain joined');
    return { record };
  }

  /**
   * A new key without continuity (federation/recovery.ts): refused unless the domain proves
   * control for it; then held down, and stored once the hold-down has passed. Posting again
   * while it is pending restarts nothing.
   */
  async #recover(live: DomainRecord, v: VerifiedRecord, signed: SignedRecord, now: Date): Promise<JoinAnswer> {
    const { directory } = this.#o;
    const fpr = v.keys.openpgp.fingerprint;
    const held = live.keys.openpgp?.fingerprint;
    if ((await this.#recoveries.vetoed(v.domain)).includes(fpr)) throw new MailmeshError('RECOVERY_VETOED', `${v.domain}: the holder of ${held} vetoed the recovery to ${fpr}`);
    let proof: string;
    try {
      proof = await proveControl(this.#sources, v.domain, v.keys);
    } catch (e) {
      if (!isMailmeshError(e) || (e.code !== 'PROOF_MISSING' && e.code !== 'PIN_MISMATCH')) throw e;
      this.#o.logger?.warn({ domain: v.domain, code: e.code, detail: e.detail }, 'new key without continuity and without proof of control');
      throw new MailmeshError('DOMAIN_HELD', heldPath(v.domain, held, fpr, this.#holdMs));
    }
    const pending = await this.#recoveries.get(v.domain);
    if (pending?.openpgp === fpr && shows(live, pending)) {
      if (now.getTime() >= Date.parse(pending.effective)) return { record: await this.#promote(live, v, signed, pending, proof, now) };
      return { record: live, pending: true };
    }
    // A first recovery, or one to another key than the pending one (whose proof has gone): the hold-down starts now.
    const started: PendingRecovery = { signed, openpgp: fpr, since: now.toISOString(), effective: new Date(now.getTime() + this.#holdMs).toISOString() };
    await this.#recoveries.put(v.domain, started);
    const record = await directory.putRecord({ ...live, pendingRecovery: shownRecovery(started, v.keys.smime?.fingerprint), updated: now.toISOString() }, live.serial);
    this.#o.logger?.warn({ domain: v.domain, held, offered: fpr, effective: started.effective, proof }, 'key recovery started: held down');
    return { record, pending: true };
  }

  /** The hold-down has passed and the proof holds: the recovered record replaces the held one. */
  async #promote(live: DomainRecord, v: VerifiedRecord, signed: SignedRecord, pending: PendingRecovery, proof: string, now: Date): Promise<DomainRecord> {
    const held = live.keys.openpgp?.fingerprint;
    const hold = holdText(Date.parse(pending.effective) - Date.parse(pending.since));
    const provenance: Provenance = {
      source: 'joined',
      verified: `signature by ${v.keys.openpgp.fingerprint} (recovered after a hold-down of ${hold} since ${pending.since}, replacing ${held}); proof ${proof}`,
      at: now.toISOString(),
    };
    const record = await this.#o.directory.putRecord(verifiedDraft(v, signed, provenance), live.serial);
    await this.#recoveries.drop(v.domain);
    this.#o.logger?.warn({ domain: v.domain, held, recovered: v.keys.openpgp.fingerprint, proof }, 'key recovery took effect');
    return record;
  }

  /**
   * The periodic pass over pending recoveries: one whose hold-down has passed takes effect if its
   * record still verifies and the proof of control still holds; a definite failure drops it; an
   * unreachable source leaves it pending.
   */
  async #recoverDue(): Promise<ReverifyOutcome[]> {
    const { directory } = this.#o;
    const out: ReverifyOutcome[] = [];
    for (const r of await directory.listDomains()) {
      if (!r.pendingRecovery) continue;
      const now = directory.clock();
      const pending = await this.#recoveries.get(r.domain);
      // None kept here: a mirrored copy showing its origin's recovery (federation/mirror.ts).
      if (!pending || !shows(r, pending) || now.getTime() < Date.parse(pending.effective)) continue;
      try {
        const v = await verifySigned(pending.signed, now);
        const proof = await proveControl(this.#sources, v.domain, v.keys);
        await this.#promote(r, v, pending.signed, pending, proof, now);
        out.push({ domain: r.domain, status: 'recovered' });
      } catch (e) {
        if (!isMailmeshError(e) || e.code === 'LOOKUP_UNAVAILABLE') {
          out.push({ domain: r.domain, status: 'unchanged', reason: (e as Error).message });
          continue;
        }
        await this.#recoveries.drop(r.domain);
        const { pendingRecovery: _, ...rest } = r;
        await directory.putRecord({ ...rest, updated: now.toISOString() }, r.serial);
        this.#o.logger?.warn({ domain: r.domain, code: e.code, detail: e.detail }, 'key recovery dropped');
        out.push({ domain: r.domain, status: 'recovery-dropped', reason: `${e.code}: ${e.message}` });
      }
    }
    return out;
  }

  /** DELETE /v1/domains/{domain}: a leave statement signed by the key the directory holds. */
  leave(domainInput: string, body: unknown): Promise<DomainRecord> {
    return this.#refused('leave', () => this.#leave(domainInput, body));
  }

  /** An operation whose failure the caller sees as #refusal says. */
  async #refused<T>(op: 'join' | 'leave' | 'veto', run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw this.#refusal(op, e);
    }
  }

  /** The record a leave or a veto speaks about: held by this directory, published or not. */
  async #held(domainInput: string): Promise<DomainRecord> {
    const domain = parseDomain(domainInput);
    const held = await this.#o.directory.findRecord(domain, { unpublished: true });
    if (!held) throw new MailmeshError('DOMAIN_NOT_FOUND', domain);
    return held;
  }

  async #leave(domainInput: string, body: unknown): Promise<DomainRecord> {
    const { directory } = this.#o;
    const held = await this.#held(domainInput);
    const domain = held.domain;
    if (held.provenance.source !== 'joined' || !held.keys.openpgp) throw new MailmeshError('DOMAIN_HELD', `${domain} was not joined; an operator removes it`);
    const p = await verifyLeave(body, held.keys.openpgp.armored, directory.clock());
    if (p.domain !== domain || p.fingerprint.toUpperCase() !== held.keys.openpgp.fingerprint) {
      throw new MailmeshError('SIGNED_RECORD_MALFORMED', `the statement is for ${p.domain} ${p.fingerprint}`);
    }
    const r = await directory.removeDomain(domain);
    await this.#recoveries.drop(domain);
    this.#o.logger?.info({ domain }, 'domain left');
    return r;
  }

  /**
   * POST /v1/domains/{domain}/veto: the holder of the held key refuses the pending recovery
   * (a statement signed by that key naming the new key). The recovery is dropped, and that key
   * is refused with RECOVERY_VETOED from then on.
   */
  veto(domainInput: string, body: unknown): Promise<DomainRecord> {
    return this.#refused('veto', () => this.#veto(domainInput, body));
  }

  async #veto(domainInput: string, body: unknown): Promise<DomainRecord> {
    const { directory } = this.#o;
    const held = await this.#held(domainInput);
    const domain = held.domain;
    if (!held.keys.openpgp) throw new MailmeshError('DOMAIN_HELD', `${domain} has no OpenPGP key to sign a veto`);
    const now = directory.clock();
    const p = await verifyVeto(body, held.keys.openpgp.armored, now);
    const pending = await this.#recoveries.get(domain);
    if (p.domain !== domain) throw new MailmeshError('SIGNED_RECORD_MALFORMED', `the statement is for ${p.domain}`);
    if (!pending || p.fingerprint.toUpperCase() !== pending.openpgp) throw new MailmeshError('NOT_FOUND', `no recovery of ${domain} to ${p.fingerprint} is pending`);
    await this.#recoveries.veto(domain, pending.openpgp);
    await this.#recoveries.drop(domain);
    const { pendingRecovery: _, ...rest } = held;
    const r = await directory.putRecord({ ...rest, updated: now.toISOString() }, held.serial);
    this.#o.logger?.warn({ domain, held: held.keys.openpgp.fingerprint, vetoed: pending.openpgp }, 'key recovery vetoed');
    return r;
  }

  /**
   * Re-checks every joined record: signature and keys still valid, proof still there. A definite
   * failure marks it stale (kept, never deleted); success makes a stale record active again.
   * An unreachable source changes nothing. First, pending recoveries whose hold-down has passed
   * take effect (or are dropped).
   */
  async reverify(): Promise<ReverifyOutcome[]> {
    const { directory } = this.#o;
    const sources = this.#sources;
    const out = await this.#recoverDue();
    for (const r of await directory.listDomains()) {
      if (r.provenance.source !== 'joined' || !r.signed) continue;
      let status: 'active' | 'stale';
      let reason: string | undefined;
      try {
        const v = await verifySigned(r.signed, directory.clock());
        await proveControl(sources, v.domain, v.keys);
        status = 'active';
      } catch (e) {
        if (!isMailmeshError(e) || e.code === 'LOOKUP_UNAVAILABLE') {
          out.push({ domain: r.domain, status: 'unchanged', reason: (e as Error).message });
          continue;
        }
        status = 'stale';
        reason = `${e.code}: ${e.message}`;
      }
      if (status !== r.status) {
        await directory.putRecord({ ...r, status, updated: directory.clock().toISOString() }, r.serial);
        this.#o.logger?.warn({ domain: r.domain, status, reason }, 'domain re-verified');
      }
      out.push({ domain: r.domain, status: status === r.status ? 'unchanged' : status, ...(reason ? { reason } : {}) });
    }
    return out;
  }

  /** Runs `reverify` (and so the pass over pending recoveries) every `intervalMs`; a failed run is logged and counted (`mailmesh_faults_total{face="reverify"}`). Returns a stop function. */
  startReverify(intervalMs: number, metrics?: Metrics): () => void {
    return every(intervalMs, 'reverify', () => this.reverify(), { logger: this.#o.logger, metrics, what: 're-verification' });
  }
}

/** The member side: post a signed record to a directory. */
export async function postJoin(directoryUrl: string, signed: { payload: string; signature: string }, fetchImpl?: Fetch): Promise<DomainRecord> {
  return (await sendJson('POST', `${directoryUrl.replace(/\/+$/, '')}/v1/domains`, signed, { fetch: fetchImpl })) as DomainRecord;
}

/** The member side: a signed leave statement (docs/federation.md), posted as DELETE /v1/domains/{domain}. */
export async function postLeave(directoryUrl: string, domain: string, fingerprint: string, privateArmored: string, now: Date, fetchImpl?: Fetch): Promise<DomainRecord> {
  const statement = await signPayload({ v: 1, type: LEAVE_TYPE, domain, fingerprint, issued: now.toISOString() }, [privateArmored], now);
  return (await sendJson('DELETE', `${directoryUrl.replace(/\/+$/, '')}/v1/domains/${encodeURIComponent(domain)}`, statement, { fetch: fetchImpl })) as DomainRecord;
}
