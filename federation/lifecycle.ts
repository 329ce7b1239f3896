import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Directory } from '../directory/directory.js';
import type { Domain } from '../directory/domain.js';
import { asMailmeshError, isMailmeshError, MailmeshError } from '../directory/errors.js';
import type { Metrics } from '../directory/metrics.js';
import type { DomainRecord, SignedRecord } from '../directory/record.js';
import { readCertificates } from '../directory/smime.js';
import { postJoin } from './join.js';
import { pinProves } from './pin.js';
import { readPins, type DomainSources } from './proof.js';
import { every } from './timer.js';
import { getJson, type Fetch } from './web.js';

/** The keys of a domain that expire: its OpenPGP key, its S/MIME leaf and the domain CA that issued the leaf. */
export type KeyKind = 'openpgp' | 'smime' | 'smime-ca';
export const KEY_KINDS: KeyKind[] = ['openpgp', 'smime', 'smime-ca'];

const DAY_MS = 86_400_000;

/** When each key of a record expires (OpenPGP: the key's expiration, RFC 4880 §5.2.3.6; X.509: notAfter, RFC 5280 §4.1.2.5). */
export function keyExpiries(keys: DomainRecord['keys']): Partial<Record<KeyKind, Date>> {
  const out: Partial<Record<KeyKind, Date>> = {};
  if (keys.openpgp?.expires) out.openpgp = new Date(keys.openpgp.expires);
  if (keys.smime) {
    out.smime = new Date(keys.smime.notAfter);
    const chain = keys.smime.chain;
    // The chain runs leaf first up to the domain CA: the CA is its last certificate.
    if (chain.length > 1) out['smime-ca'] = readCertificates(chain[chain.length - 1]!)[0]!.notAfter;
  }
  return out;
}

/** A date as operators read it: ISO 8601 to the second, UTC. */
export function isoSecond(d: Date | string | undefined | null): string {
  return d ? new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}

function isLocal(r: DomainRecord): boolean {
  return r.provenance.source === 'local' && r.status !== 'deleted';
}

/**
 * `/metrics` gauge `mailmesh_key_not_after_timestamp_seconds{domain,kind}` for this directory's own
 * domains, kept current from the directory's 'change' events (its own writes, and on a store
 * with subscribe those of other processes: a CLI roll shows at the next scrape). Returns a stop function.
 */
export async function watchKeyExpiry(directory: Directory, metrics: Metrics): Promise<() => void> {
  const expiries = new Map<string, Partial<Record<KeyKind, Date>>>();
  const update = (r: DomainRecord) => {
    if (isLocal(r)) expiries.set(r.domain, keyExpiries(r.keys));
    else expiries.delete(r.domain);
  };
  directory.on('change', update);
  for (const r of await directory.listDomains()) update(r);
  metrics.collect('mailmesh_key_not_after_timestamp_seconds', 'When each key of a local domain expires (Unix time; kind openpgp, smime, smime-ca)', 'gauge', () =>
    [...expiries].flatMap(([domain, e]) => KEY_KINDS.filter((k) => e[k]).map((kind) => ({ labels: { domain, kind }, value: Math.floor(e[kind]!.getTime() / 1000) }))),
  ['domain', 'kind']);
  return () => void directory.off('change', update);
}

/**
 * Before a switch (docs/lifecycle.md "Roll"): when the domain publishes any `_mailmesh` pin, one of
 * them must name the next keys, or peers and directories that check the pin would refuse the new
 * key (ROLL_PROOF_MISSING). A domain that publishes no pin proves control otherwise (its
 * well-known record) and is not held back. LOOKUP_UNAVAILABLE when its DNS cannot be asked.
 */
export async function checkNextPinned(sources: DomainSources, domain: Domain, next: DomainRecord['keys']): Promise<string> {
  const { pins, broken } = await readPins(sources, domain);
  if (pins.length === 0 && broken.length === 0) return `_mailmesh.${domain} publishes no pin`;
  if (pins.some((p) => pinProves(p, next))) return `_mailmesh.${domain} names the next keys`;
  throw new MailmeshError('ROLL_PROOF_MISSING', `_mailmesh.${domain} names ${pins.map((p) => `pgp=${p.pgp ?? '-'} smime=${p.smime ?? '-'}`).join(', ') || 'no valid pin'}; the next keys are pgp=${next.openpgp?.fingerprint ?? '-'} smime=${next.smime?.fingerprint ?? '-'}`);
}

/** What posting a record to one directory came to. */
export interface PostResult {
  url: string;
  result: 'ok' | 'unchanged' | 'not-joined' | 'pending' | 'failed';
  /** The directory's answer: its serial, a pending recovery, or the error. */
  detail?: string;
  record?: DomainRecord;
}

function digest(signed: SignedRecord): string {
  return createHash('sha256').update(signed.payload).digest('hex');
}

/** kv key under which a directory's acknowledgement of a domain's signed record is kept. */
export function postedKey(domain: string, url: string): string {
  return `lifecycle:posted:${domain}:${url}`;
}

/** The record a directory serves for a domain over REST (GET /v1/domains/{domain}); undefined when it has none. */
export async function directoryRecord(url: string, domain: string, fetchImpl?: Fetch): Promise<DomainRecord | undefined> {
  return (await getJson(`${url.replace(/\/+$/, '')}/v1/domains/${encodeURIComponent(domain)}`, { fetch: fetchImpl })) as DomainRecord | undefined;
}

/**
 * Brings every directory that holds a local domain up to date with its current signed record
 * (federation/join.ts postJoin): a directory that already serves this very record is only
 * acknowledged; one that holds no record of the domain is left alone (`mailmesh join` joins one);
 * a failure is reported and retried next time. Acknowledgements are kept in the store kv
 * (`lifecycle:posted:<domain>:<url>`), so an unchanged record is not posted again.
 */
export async function publishRecord(directory: Directory, r: DomainRecord, urls: string[], fetchImpl?: Fetch): Promise<PostResult[]> {
  const signed = r.signed;
  if (!signed) return [];
  const out: PostResult[] = [];
  for (const url of urls) {
    const key = postedKey(r.domain, url);
    if ((await directory.store.kvGet(key)) === digest(signed)) {
      out.push({ url, result: 'unchanged' });
      continue;
    }
    try {
      const held = await directoryRecord(url, r.domain, fetchImpl);
      if (!held) {
        out.push({ url, result: 'not-joined', detail: `holds no record of ${r.domain} (mailmesh join ${url})` });
        continue;
      }
      if (held.signed?.payload === signed.payload) {
        await directory.store.kvPut(key, digest(signed));
        out.push({ url, result: 'unchanged', record: held, detail: 'it serves this record' });
        continue;
      }
      const record = await postJoin(url, signed, fetchImpl);
      // A recovery the directory holds down (202, federation/recovery.ts) is posted again until it took effect.
      if (record.pendingRecovery && record.pendingRecovery.openpgp === r.keys.openpgp?.fingerprint) {
        out.push({ url, result: 'pending', record, detail: `held down until ${isoSecond(record.pendingRecovery.effective)}` });
        continue;
      }
      await directory.store.kvPut(key, digest(signed));
      out.push({ url, result: 'ok', record, detail: `serial ${record.serial}` });
    } catch (e) {
      const err = asMailmeshError(e);
      out.push({ url, result: 'failed', detail: `${err.code}: ${err.message}` });
    }
  }
  return out;
}

export interface LifecycleOptions {
  directory: Directory;
  /** keys.* of the configuration. */
  keys: { overlapDays: number; autoRoll: boolean; renewBeforeDays: number };
  /** federation.directories: every one that holds a local domain gets its new records. */
  directories: { url: string }[];
  /** Where the domain's own `_mailmesh` TXT is read (the switch waits for it to name the next keys). */
  sources: DomainSources;
  logger?: Pick<Logger, 'info' | 'warn'>;
  metrics?: Metrics;
  fetch?: Fetch;
}

/** One thing a tick did or could not do for a domain. */
export interface LifecycleEvent {
  domain: string;
  action: 'pruned' | 'renewed' | 'announced' | 'finished' | 'waiting' | 'posted' | 'failed';
  detail?: string;
}

/**
 * serve's unattended key work (docs/lifecycle.md), one node of a cluster at a time (cli/app.ts
 * `leased`): for each local domain, erase retained keys past their time, re-issue the S/MIME
 * leaf within keys.renewBeforeDays of its expiry, with keys.autoRoll announce a roll when a key
 * expires within renewBeforeDays + overlapDays and finish it after the overlap (once the
 * `_mailmesh` TXT names the next keys), and post the current record to the directories. The clock
 * is the directory's, so a test walks years by calling tick().
 */
export class KeyLifecycle {
  readonly #o: LifecycleOptions;

  constructor(o: LifecycleOptions) {
    this.#o = o;
  }

  /** One pass over every local domain; a domain whose work fails is reported and the others go on. */
  async tick(): Promise<LifecycleEvent[]> {
    const events: LifecycleEvent[] = [];
    for (const r of await this.#o.directory.listDomains()) {
      if (!isLocal(r)) continue;
      try {
        await this.#domain(r, events);
      } catch (e) {
        const err = asMailmeshError(e);
        events.push({ domain: r.domain, action: 'failed', detail: `${err.code}: ${err.message}` });
        this.#o.metrics?.faults().inc({ face: 'lifecycle' });
      }
    }
    for (const e of events) {
      const level = e.action === 'failed' || e.action === 'waiting' ? 'warn' : 'info';
      this.#o.logger?.[level]({ domain: e.domain, action: e.action, detail: e.detail }, `key lifecycle: ${e.action}`);
    }
    return events;
  }

  /** Runs tick() every `intervalMs` (keys.checkIntervalSec), the first at once; returns a stop function. */
  start(intervalMs: number): () => void {
    return every(intervalMs, 'lifecycle', () => this.tick(), { logger: this.#o.logger, metrics: this.#o.metrics, what: 'key lifecycle check', immediate: true });
  }

  async #domain(record: DomainRecord, events: LifecycleEvent[]): Promise<void> {
    const { directory, keys } = this.#o;
    const domain = record.domain;
    const now = directory.clock();
    let r = record;
    const pruned = await directory.pruneRetained(domain);
    if (pruned > 0) events.push({ domain, action: 'pruned', detail: `${pruned} retained key set(s) erased` });
    if (r.rollover) {
      if (keys.autoRoll && now.getTime() >= Date.parse(r.rollover.switchAfter)) {
        try {
          await checkNextPinned(this.#o.sources, domain, r.next ?? {});
          r = await directory.finishRoll(domain);
          events.push({ domain, action: 'finished', detail: `openpgp ${r.keys.openpgp?.fingerprint ?? '-'}` });
        } catch (e) {
          if (!isMailmeshError(e, 'ROLL_PROOF_MISSING') && !isMailmeshError(e, 'LOOKUP_UNAVAILABLE')) throw e;
          events.push({ domain, action: 'waiting', detail: `${e.code}: ${e.message}` });
        }
      }
    } else {
      const left = (d: Date | undefined) => (d ? d.getTime() - now.getTime() : Infinity);
      let e = keyExpiries(r.keys);
      // The leaf is re-issued under the domain CA only while the CA outlives the renewal window;
      // a CA that does not is replaced by a roll (below).
      if (left(e.smime) <= keys.renewBeforeDays * DAY_MS && left(e['smime-ca']) > keys.renewBeforeDays * DAY_MS) {
        r = await directory.renewSmime(domain);
        e = keyExpiries(r.keys);
        events.push({ domain, action: 'renewed', detail: `smime ${r.keys.smime?.fingerprint ?? '-'} until ${isoSecond(e.smime)}` });
      }
      // The leaf is renewed rather than rolled: the OpenPGP key and the CA decide when to roll.
      const due = Math.min(left(e.openpgp), left(e['smime-ca']));
      if (keys.autoRoll && due <= (keys.renewBeforeDays + keys.overlapDays) * DAY_MS) {
        r = await directory.announceRoll(domain, { overlapDays: keys.overlapDays });
        events.push({ domain, action: 'announced', detail: `next openpgp ${r.next?.openpgp?.fingerprint ?? '-'}, switch after ${r.rollover?.switchAfter ?? '-'}` });
      }
    }
    for (const p of await publishRecord(directory, r, this.#o.directories.map((d) => d.url), this.#o.fetch)) {
      if (p.result === 'ok' || p.result === 'pending') events.push({ domain, action: 'posted', detail: `${p.url}: ${p.result}, ${p.detail}` });
      if (p.result === 'failed') events.push({ domain, action: 'failed', detail: `${p.url}: ${p.detail}` });
    }
  }
}
