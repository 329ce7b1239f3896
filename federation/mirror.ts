import type { Logger } from 'pino';
import type { Directory } from '../directory/directory.js';
import { parseDomain } from '../directory/domain.js';
import { asMailmeshError, MailmeshError } from '../directory/errors.js';
import type { DomainRecord, Provenance } from '../directory/record.js';
import { verifySigned } from '../directory/signed.js';
import type { Metrics } from '../directory/metrics.js';
import { continuity, verifiedDraft } from './join.js';
import { every } from './timer.js';
import { getJson, type Fetch } from './web.js';

/**
 * Directory peering (docs/architecture.md "Federation"): copies another directory's records through its
 * sync API (`GET /v1/domains?since=`), verifying every signature here. A record is stored as
 * `mirrored` only if its signature verifies, its keys are the signed ones, and, when we
 * already hold the domain, the key change has continuity. Tombstones remove mirrored copies.
 * Local, joined and imported records are never overwritten by a mirror.
 */
export interface MirrorResult {
  stored: string[];
  removed: string[];
  refused: { domain: string; code: string; reason: string }[];
  serial: number;
}

/** The origin's `pendingRecovery` of a record, if it has the expected shape (it is shown, never acted on). */
function pendingShown(p: unknown): DomainRecord['pendingRecovery'] {
  if (!p || typeof p !== 'object') return undefined;
  const { openpgp, smime, since, effective } = p as Record<string, unknown>;
  const date = (d: unknown) => typeof d === 'string' && !Number.isNaN(Date.parse(d));
  if (typeof openpgp !== 'string' || !/^[0-9A-F]{40}$/.test(openpgp) || !date(since) || !date(effective)) return undefined;
  if (smime !== undefined && (typeof smime !== 'string' || !/^[0-9a-f]{64}$/.test(smime))) return undefined;
  return { openpgp, ...(smime ? { smime } : {}), since: since as string, effective: effective as string };
}

export class Mirror {
  readonly #url: string;
  readonly #o: { directory: Directory; fetch?: Fetch; logger?: Pick<Logger, 'warn' | 'info'>; pageSize?: number };
  #since = 0;

  constructor(url: string, o: { directory: Directory; fetch?: Fetch; logger?: Pick<Logger, 'warn' | 'info'>; pageSize?: number }) {
    this.#url = url.replace(/\/+$/, '');
    this.#o = o;
  }

  /** Pulls every change since the last sync (all on the first). */
  async sync(): Promise<MirrorResult> {
    const out: MirrorResult = { stored: [], removed: [], refused: [], serial: this.#since };
    for (;;) {
      const page = (await getJson(`${this.#url}/v1/domains?since=${this.#since}&limit=${this.#o.pageSize ?? 100}`, { fetch: this.#o.fetch })) as
        | { records?: unknown; next?: unknown; serial?: unknown }
        | undefined;
      if (!page || !Array.isArray(page.records)) break;
      for (const r of page.records as DomainRecord[]) {
        try {
          await this.#apply(r, out);
        } catch (e) {
          const err = asMailmeshError(e);
          out.refused.push({ domain: String((r as { domain?: unknown })?.domain), code: err.code, reason: err.message });
          this.#o.logger?.warn({ origin: this.#url, domain: (r as { domain?: unknown })?.domain, code: err.code }, 'mirrored record refused');
        }
        if (typeof r?.serial === 'number' && r.serial > this.#since) this.#since = r.serial;
      }
      if (typeof page.next !== 'number') break;
    }
    out.serial = this.#since;
    return out;
  }

  async #apply(r: DomainRecord, out: MirrorResult): Promise<void> {
    const { directory } = this.#o;
    const domain = parseDomain(String(r?.domain));
    const held = await directory.store.getRecord(domain);
    const live = held && held.status !== 'deleted' ? held : undefined;
    const ours = live && !(live.provenance.source === 'mirrored' && live.provenance.origin === this.#url);
    if (r.status === 'deleted') {
      if (live && !ours) {
        await directory.removeDomain(domain);
        out.removed.push(domain);
      }
      return;
    }
    if (ours) return;
    const shown = pendingShown(r.pendingRecovery);
    // Our copy of this origin's record, with the same payload: it was verified when we stored it.
    // Only the origin's pending recovery (unsigned, shown as the origin says) may have changed.
    if (live?.signed && live.signed.payload === r.signed?.payload) {
      if (JSON.stringify(live.pendingRecovery) === JSON.stringify(shown)) return;
      const { pendingRecovery: _, ...rest } = live;
      await directory.putRecord({ ...rest, ...(shown ? { pendingRecovery: shown } : {}), updated: directory.clock().toISOString() }, live.serial);
      out.stored.push(domain);
      return;
    }
    const now = directory.clock();
    const v = await verifySigned(r.signed, now, live?.keys.openpgp ? [live.keys.openpgp.armored] : []);
    if (v.domain !== domain) throw new MailmeshError('SIGNED_RECORD_MALFORMED', `the record of ${domain} is signed for ${v.domain}`);
    // A key recovered at the origin has no continuity here: the domain posts it to this directory,
    // which holds it down itself (federation/recovery.ts); a mirror takes no key change on the origin's word.
    const how = await continuity(live?.keys.openpgp?.armored, live?.next?.openpgp?.armored, v, now);
    if (!how) throw new MailmeshError('PIN_VIOLATION', `${domain}: ${live!.keys.openpgp?.fingerprint} → ${v.keys.openpgp.fingerprint}`);
    const provenance: Provenance = { source: 'mirrored', verified: `signature by ${v.keys.openpgp.fingerprint} verified here (${how})`, origin: this.#url, at: now.toISOString() };
    await directory.putRecord({ ...verifiedDraft(v, r.signed!, provenance, r.status === 'stale' ? 'stale' : 'active'), ...(shown ? { pendingRecovery: shown } : {}) }, held ? held.serial : null);
    out.stored.push(domain);
  }

  /** Syncs now and every `intervalMs`; a failed sync is logged and counted (`mailmesh_faults_total{face="mirror"}`). Returns a stop function. */
  start(intervalMs: number, metrics?: Metrics): () => void {
    return every(intervalMs, 'mirror', () => this.sync(), { logger: this.#o.logger, metrics, immediate: true, what: `mirror sync of ${this.#url}` });
  }
}
