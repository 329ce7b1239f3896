import type { Logger } from 'pino';
import type { Directory } from '../directory/directory.js';
import { parseDomain } from '../directory/domain.js';
import { asMailmeshError, isMailmeshError, MailmeshError } from '../directory/errors.js';
import { parseCanonical } from '../directory/jcs.js';
import { readOpenPgpKey } from '../directory/openpgp.js';
import type { DomainRecord } from '../directory/record.js';
import { asSigned, checkRecordPayload, LEAVE_TYPE, revokedBy, signPayload, verifyLeave, verifySigned, type VerifiedRecord } from '../directory/signed.js';
import type { Metrics } from '../directory/metrics.js';
import { guardedFetch } from './outbound.js';
import { every } from './timer.js';
import { proveControl, type DomainSources } from './proof.js';
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
}

/** The directory side of join, leave and re-verification (docs/federation.md "Join and leave"). */
export class JoinService {
  readonly #o: JoinOptions;
  /** The domain's own sources, with the fetch that refuses special-purpose addresses (federation/outbound.ts). */
  readonly #sources: DomainSources;

  constructor(o: JoinOptions) {
    this.#o = o;
    this.#sources = { ...o.sources, fetch: guardedFetch({ resolver: o.sources.resolver, allowPrivateAddresses: o.allowPrivateAddresses ?? false }) };
  }

  /**
   * A refusal as the caller sees it: the stable code and the catalogue's text. The domain is the
   * caller's choice, so what the lookups found out (fetch and DNS errors of any host) goes to the
   * log only: join is no probe of other services.
   */
  #refusal(op: 'join' | 'leave', e: unknown): MailmeshError {
    const err = asMailmeshError(e);
    this.#o.logger?.warn({ op, code: err.code, detail: err.detail, ...(isMailmeshError(e) ? {} : { err: e }) }, `${op} refused`);
    return new MailmeshError(err.code);
  }

  /**
   * POST /v1/domains: verify the signed record (canonical JSON, keys, signature), check that it
   * may replace what is held (same key or a rollover), prove domain control, store it as `joined`.
   */
  async join(body: unknown): Promise<DomainRecord> {
    try {
      return await this.#join(body);
    } catch (e) {
      throw this.#refusal('join', e);
    }
  }

  async #join(body: unknown): Promise<DomainRecord> {
    const { directory } = this.#o;
    const sources = this.#sources;
    const now = directory.clock();
    const payload = checkRecordPayload(parseCanonical(asSigned(body).payload));
    const existing = await directory.store.getRecord(parseDomain(payload.domain));
    const live = existing && existing.status !== 'deleted' ? existing : undefined;
    const heldKey = live?.keys.openpgp?.armored;
    let v: VerifiedRecord;
    try {
      v = await verifySigned(body, now, heldKey ? [heldKey] : []);
    } catch (e) {
      // docs/architecture.md "Revocation": the held key, revoked by itself, removes the domain's record.
      if (isMailmeshError(e, 'KEY_REVOKED') && heldKey && live && e.detail === live.keys.openpgp?.fingerprint) {
        const key = await readOpenPgpKey(payload.keys.openpgp ?? '');
        if (key.getFingerprint().toUpperCase() === e.detail && (await key.isRevoked(undefined, undefined, now))) {
          this.#o.logger?.info({ domain: live.domain, fingerprint: e.detail }, 'domain key revoked: record removed');
          return directory.removeDomain(live.domain);
        }
      }
      throw e;
    }
    if (live && live.provenance.source !== 'joined' && live.provenance.source !== 'mirrored') {
      throw new MailmeshError('DOMAIN_HELD', `${v.domain} is a ${live.provenance.source} domain of this directory`);
    }
    // A joined or mirrored record was verified when it was stored, so its payload parses.
    const heldPayload = live?.signed ? checkRecordPayload(parseCanonical(live.signed.payload)) : undefined;
    const how = await continuity(heldKey, heldPayload?.next?.openpgp, v, now);
    if (!how) throw new MailmeshError('DOMAIN_HELD', `${v.domain} is held by ${live!.keys.openpgp?.fingerprint}; the new key ${v.keys.openpgp.fingerprint} is neither announced nor signed by it`);
    if (heldPayload && Date.parse(v.payload.issued) <= Date.parse(heldPayload.issued)) throw new MailmeshError('SIGNED_RECORD_MALFORMED', `${v.domain}: issued ${v.payload.issued} is not newer than the record held`);
    const proof = await proveControl(sources, v.domain, v.keys);
    const record = await directory.putRecord(
      {
        domain: v.domain,
        keys: v.keys,
        gateways: v.payload.gateways,
        formats: v.payload.formats,
        capabilities: v.payload.capabilities,
        validity: v.payload.validity,
        updated: now.toISOString(),
        status: 'active',
        provenance: { source: 'joined', verified: `signature by ${v.keys.openpgp.fingerprint} (${how}); ${proof}`, at: now.toISOString() },
        signed: asSigned(body),
      },
      existing ? existing.serial : null,
    );
    this.#o.logger?.info({ domain: record.domain, fingerprint: v.keys.openpgp.fingerprint, how, proof }, 'domain joined');
    return record;
  }

  /** DELETE /v1/domains/{domain}: a leave statement signed by the key the directory holds. */
  async leave(domainInput: string, body: unknown): Promise<DomainRecord> {
    try {
      return await this.#leave(domainInput, body);
    } catch (e) {
      throw this.#refusal('leave', e);
    }
  }

  async #leave(domainInput: string, body: unknown): Promise<DomainRecord> {
    const { directory } = this.#o;
    const domain = parseDomain(domainInput);
    const held = await directory.findRecord(domain, { unpublished: true });
    if (!held) throw new MailmeshError('DOMAIN_NOT_FOUND', domain);
    if (held.provenance.source !== 'joined' || !held.keys.openpgp) throw new MailmeshError('DOMAIN_HELD', `${domain} was not joined; an operator removes it`);
    const p = await verifyLeave(body, held.keys.openpgp.armored, directory.clock());
    if (p.domain !== domain || p.fingerprint.toUpperCase() !== held.keys.openpgp.fingerprint) {
      throw new MailmeshError('SIGNED_RECORD_MALFORMED', `the statement is for ${p.domain} ${p.fingerprint}`);
    }
    const r = await directory.removeDomain(domain);
    this.#o.logger?.info({ domain }, 'domain left');
    return r;
  }

  /**
   * Re-checks every joined record: signature and keys still valid, proof still there. A definite
   * failure marks it stale (kept, never deleted); success makes a stale record active again.
   * An unreachable source changes nothing.
   */
  async reverify(): Promise<{ domain: string; status: 'active' | 'stale' | 'unchanged'; reason?: string }[]> {
    const { directory } = this.#o;
    const sources = this.#sources;
    const out: { domain: string; status: 'active' | 'stale' | 'unchanged'; reason?: string }[] = [];
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

  /** Runs `reverify` every `intervalMs`; a failed run is logged and counted (`mailmesh_faults_total{face="reverify"}`). Returns a stop function. */
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
