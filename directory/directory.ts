import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { parseAddress, parseDomain, type Domain } from './domain.js';
import { MailmeshError } from './errors.js';
import { ChangeFeed } from './feed.js';
import { generateDomainKeys, type KeyOptions } from './keys.js';
import {
  carriedRevocations,
  daysAfter,
  DEFAULT_OVERLAP_DAYS,
  DEFAULT_RETAIN_DAYS,
  domainCa,
  expired,
  newKeys,
  recordValidity,
  renewedLeaf,
  retire,
  revocations,
  withCaCrl,
  type KeySet,
} from './lifecycle.js';
import { canSign, type RevocationReason } from './openpgp.js';
import { ownCapabilities, secretsContext, type DomainRecord, type DomainSecrets, type GatewayEndpoints, type RecordDraft, type TunnelFormat } from './record.js';
import { payloadKeys, recordPayload, signPayload, type PayloadExtra } from './signed.js';
import { MASTER_KEY_CHECK_CONTEXT, Sealer } from './seal.js';
import { assertSerial, type MetaStore, type PutOptions, type Store } from './store/store.js';
import { TransparencyLog } from './tlog/log.js';

export interface DirectoryOptions {
  keys: KeyOptions;
  clock?: () => Date;
  /**
   * Where a domain's CRLs are served (the HTTP face: GET /v1/domains/{domain}/crl); when given,
   * the S/MIME leaves this directory issues name `<crlUrl>/<caKeyId>`, the CRL of the CA that
   * issued them, as their CRL distribution point (RFC 5280 §4.2.1.13).
   */
  crlUrl?: (domain: Domain) => string;
  /**
   * Keep a transparency log of every published record version (docs/transparency.md); `origin` is
   * its checkpoint origin (cli/app.ts: `<dns.zone>/log`), kept with the log key when that is made.
   */
  log?: { origin: string };
}

export interface AddDomainOptions {
  formats?: TunnelFormat[];
  gateways?: GatewayEndpoints;
}

/** A protocol-neutral question the faces (HTTP, DNS, LDAP) translate into. */
export type Lookup = { domain: string } | { address: string } | { fingerprint: string };

/**
 * The directory: domain records and their keys, over any Store. Faces call `lookup`, `serial`,
 * `ping` and `storeKind` and render the result; they never touch the store (lint forbids
 * `.store` in directory/http, dns and ldap). Emits 'change' (DomainRecord) after writes: its
 * own, and on a shared store (RecordStore.subscribe) those of other nodes too.
 */
export class Directory extends EventEmitter<{ change: [DomainRecord] }> {
  /**
   * The whole store: the directory uses its record side; the composition root, federation/ and
   * gateway/ hand its kv side (KvStore) to the users that need one. Not for the faces.
   */
  readonly store: Store;
  readonly #sealer: Sealer;
  readonly #opts: DirectoryOptions;
  readonly clock: () => Date;
  /** Other nodes' writes, on a shared store. */
  #feed: ChangeFeed | undefined;
  #log: TransparencyLog | undefined;

  private constructor(store: Store, sealer: Sealer, opts: DirectoryOptions) {
    super();
    this.store = store;
    this.#sealer = sealer;
    this.#opts = opts;
    this.clock = opts.clock ?? (() => new Date());
  }

  /** MASTER_KEY_MISMATCH unless the master key opens the store's check value (set by the first opening of an empty store). */
  static async checkMasterKey(store: MetaStore, masterKey: Buffer): Promise<Sealer> {
    const sealer = new Sealer(masterKey);
    const check = await store.setMetaIfAbsent(
      'master-key-check',
      sealer.seal(randomBytes(16), MASTER_KEY_CHECK_CONTEXT).toString('base64'),
    );
    try {
      sealer.open(Buffer.from(check, 'base64'), MASTER_KEY_CHECK_CONTEXT);
    } catch {
      throw new MailmeshError('MASTER_KEY_MISMATCH');
    }
    return sealer;
  }

  /**
   * Opens a directory on a store. The first master key to open a store leaves a check value;
   * a different key is refused (MASTER_KEY_MISMATCH) before anything is read or written.
   */
  static async open(store: Store, masterKey: Buffer, opts: DirectoryOptions): Promise<Directory> {
    const sealer = await Directory.checkMasterKey(store, masterKey);
    const d = new Directory(store, sealer, opts);
    if (opts.log) d.logSkipped = await (d.#log = new TransparencyLog(store, sealer, opts.log.origin)).backfill(store);
    d.#feed = await ChangeFeed.follow(store, (r) => d.emit('change', r));
    return d;
  }

  /** The highest serial the store has handed out (0 for an empty store): grows with every change. */
  async serial(): Promise<number> {
    return this.store.serial();
  }

  /** Throws STORE_UNAVAILABLE if the store cannot be reached. */
  async ping(): Promise<void> {
    return this.store.ping();
  }

  /** Which backend holds the records (sqlite, redis, memory), as /healthz reports it. */
  get storeKind(): Store['kind'] {
    return this.store.kind;
  }

  /** The transparency log (DirectoryOptions.log): the faces serve it, every published version is appended to it before it is written. */
  get log(): TransparencyLog | undefined {
    return this.#log;
  }

  /** Domains whose record could not be logged when the directory opened (TLOG_ENTRY_TOO_LARGE): served without a proof. */
  logSkipped: string[] = [];

  /** Every record write: logged first (never served unlogged), then written, then announced; a lost compare-and-set is refused before the log. */
  async #put(draft: RecordDraft, opts: PutOptions): Promise<DomainRecord> {
    if (this.#log && opts.ifSerial !== undefined) assertSerial(draft.domain, await this.store.getRecord(draft.domain), opts.ifSerial);
    await this.#log?.record(draft);
    const record = await this.store.putRecord(draft, opts);
    this.#feed?.own(record.serial);
    this.emit('change', record);
    return record;
  }

  /** Creates a member domain with freshly generated keys; refuses an existing one. */
  async addDomain(input: string, opts: AddDomainOptions = {}): Promise<DomainRecord> {
    const domain = parseDomain(input);
    const existing = await this.store.getRecord(domain);
    if (existing && existing.status !== 'deleted') throw new MailmeshError('DOMAIN_EXISTS', domain);
    const now = this.clock();
    const { keys, secrets } = await generateDomainKeys(domain, this.#opts.keys, now, this.#opts.crlUrl?.(domain));
    const crls = await this.#caCrls({ keys, secrets }, undefined, now);
    const content = {
      domain,
      keys,
      gateways: opts.gateways ?? { smtp: [] },
      formats: opts.formats ?? ['pgp-mime' as const, 'smime' as const],
      capabilities: ownCapabilities(keys),
      validity: recordValidity(keys, now),
      ...(crls ? { crls } : {}),
    };
    // Every record this directory serves for its own domains is signed by the domain key (docs/federation.md).
    const signed = await signPayload(recordPayload(content, now, { crls }), [secrets.openpgp!.armored], now);
    return this.#put(
      {
        ...content,
        signed,
        updated: now.toISOString(),
        status: 'active',
        provenance: { source: 'local', verified: 'generated by this directory', at: now.toISOString() },
      },
      { ifSerial: existing ? existing.serial : null, secrets: this.#seal(domain, secrets) },
    );
  }

  /**
   * With crlUrl (the leaves name their CA's CRL as distribution point): `crls` with a first CRL
   * of the domain CA of `set` when none is that CA's yet (withCaCrl); else `crls` as they are.
   */
  async #caCrls(set: KeySet, crls: string[] | undefined, now: Date): Promise<string[] | undefined> {
    return this.#opts.crlUrl ? withCaCrl(set, crls, now) : crls;
  }

  #seal(domain: Domain, secrets: DomainSecrets): Buffer {
    return this.#sealer.seal(Buffer.from(JSON.stringify(secrets)), secretsContext(domain));
  }

  /**
   * The domain's record, or undefined if none; a domain that was removed counts as none, and so
   * does an unpublished one (publish: false) unless `unpublished` is set.
   */
  async findRecord(input: string, opts: { unpublished?: boolean } = {}): Promise<DomainRecord | undefined> {
    const r = await this.store.getRecord(parseDomain(input));
    return r && r.status !== 'deleted' && (opts.unpublished || r.publish !== false) ? r : undefined;
  }

  async getRecord(input: string): Promise<DomainRecord> {
    const r = await this.findRecord(input);
    if (!r) throw new MailmeshError('DOMAIN_NOT_FOUND', parseDomain(input));
    return r;
  }

  /** Every live record, in serial order. */
  async listDomains(): Promise<DomainRecord[]> {
    const out: DomainRecord[] = [];
    for (let since = 0; ; ) {
      const page = await this.store.listSince(since, 500);
      if (page.length === 0) return out;
      out.push(...page.filter((r) => r.status !== 'deleted' && r.publish !== false));
      since = page[page.length - 1]!.serial;
    }
  }

  /** Changes since a serial (tombstones included), for sync and mirroring. */
  async changesSince(since: number, limit: number): Promise<{ records: DomainRecord[]; serial: number }> {
    const [records, serial] = await Promise.all([this.store.listSince(since, limit), this.store.serial()]);
    // An unpublished record is, to the outside, a removed one: mirrors drop what they had.
    return { records: records.map((r) => (r.publish === false ? { ...tombstone(r), publish: undefined } : r)), serial };
  }

  /** Resolves a lookup to a record: by domain, by any address in a member domain, or by key fingerprint. */
  async lookup(q: Lookup): Promise<DomainRecord | undefined> {
    if ('domain' in q) return this.findRecord(q.domain);
    if ('address' in q) return this.findRecord(parseAddress(q.address).domain);
    const fpr = q.fingerprint.replace(/\s+/g, '').toUpperCase();
    // A domain is found by its next keys too (announced in a roll): peers may already use them.
    const matches = (k: DomainRecord['keys'] | undefined) => k?.openpgp?.fingerprint === fpr || k?.smime?.fingerprint.toUpperCase() === fpr;
    return (await this.listDomains()).find((r) => matches(r.keys) || matches(r.next));
  }

  /** Opens a domain's private keys (for the gateway). */
  async getSecrets(input: string): Promise<DomainSecrets> {
    const domain: Domain = parseDomain(input);
    const blob = await this.store.getSecrets(domain);
    if (!blob) throw new MailmeshError('DOMAIN_NOT_FOUND', `${domain} has no private keys here`);
    return JSON.parse(this.#sealer.open(blob, secretsContext(domain)).toString('utf8')) as DomainSecrets;
  }

  /** Removes a domain: a tombstone stays so that mirrors learn of the removal; its private keys are erased. */
  async removeDomain(input: string): Promise<DomainRecord> {
    const current = await this.findRecord(input, { unpublished: true });
    if (!current) throw new MailmeshError('DOMAIN_NOT_FOUND', parseDomain(input));
    const now = this.clock().toISOString();
    return this.#put({ ...tombstone(current), updated: now }, { ifSerial: current.serial, secrets: null });
  }

  /**
   * Writes a record that came from elsewhere (joined, imported, mirrored: federation/), keeping
   * the domain's private keys if this directory has any; compare-and-set as RecordStore.putRecord.
   */
  async putRecord(draft: RecordDraft, ifSerial?: number | null): Promise<DomainRecord> {
    return this.#put(draft, { ifSerial });
  }

  /**
   * Signs a local domain's record again with its own key. What the record publishes besides its
   * keys is carried on unless `extra` replaces it: announced next keys (record.next), the CRLs
   * (record.crls) and the revocation certificates of the signed payload.
   */
  async resign(input: string, extra: PayloadExtra = {}): Promise<DomainRecord> {
    const { current, secrets, now } = await this.#own(input);
    // What this software reads now: a record signed before capabilities existed gains them here.
    const content = { ...current, capabilities: ownCapabilities(current.keys) };
    const signed = await signPayload(recordPayload(content, now, carried(current, extra)), [secrets.openpgp!.armored], now);
    return this.putRecord({ ...content, signed, updated: now.toISOString() }, current.serial);
  }

  /** A local domain's record and private keys (TUNNEL_NO_KEY without an OpenPGP key here: it signs the record). */
  async #own(input: string): Promise<{ current: DomainRecord; secrets: DomainSecrets; now: Date }> {
    const current = await this.getRecord(input);
    const secrets = await this.getSecrets(current.domain);
    if (!secrets.openpgp) throw new MailmeshError('TUNNEL_NO_KEY', `${current.domain} has no OpenPGP private key here`);
    return { current, secrets, now: this.clock() };
  }

  /**
   * Signs `content` (by every key of `signing` that can still sign, at least the first) and
   * writes it with the domain's secrets in one atomic write, compare-and-set on the serial read.
   */
  async #commit(current: DomainRecord, content: DomainRecord, extra: PayloadExtra, signing: string[], secrets: DomainSecrets, now: Date): Promise<DomainRecord> {
    const usable = [signing[0]!];
    for (const a of signing.slice(1)) if (await canSign(a, now)) usable.push(a);
    const full = { ...content, capabilities: ownCapabilities(content.keys), crls: extra.crls };
    const signed = await signPayload(recordPayload(full, now, extra), usable, now);
    return this.#put({ ...full, signed, updated: now.toISOString() }, { ifSerial: current.serial, secrets: this.#seal(current.domain, secrets) });
  }

  /**
   * Roll, first step (docs/lifecycle.md "Roll"): new keys (OpenPGP; S/MIME under the same
   * domain CA, or a new CA near the CA's end) announced as `next` in the record signed by the
   * current key, switchable after `overlapDays` (keys.overlapDays). ROLL_IN_PROGRESS if one is announced.
   */
  async announceRoll(input: string, opts: { overlapDays?: number } = {}): Promise<DomainRecord> {
    const { current, secrets, now } = await this.#own(input);
    // Next secrets without a published announcement (a write that never finished) are replaced.
    if (current.next || current.rollover) throw new MailmeshError('ROLL_IN_PROGRESS', `${current.domain}: announced ${current.rollover?.announced ?? '(unknown)'}`);
    const next = await newKeys(current.domain, { keys: current.keys, secrets }, { keys: this.#opts.keys, now, crlUrl: this.#opts.crlUrl?.(current.domain) });
    const overlap = opts.overlapDays ?? this.#opts.keys.overlapDays ?? DEFAULT_OVERLAP_DAYS;
    const content = { ...current, next: next.keys, rollover: { announced: now.toISOString(), switchAfter: daysAfter(now, overlap) } };
    const crls = await this.#caCrls(next, current.crls, now);
    return this.#commit(current, content, carried(current, { next: payloadKeys(next.keys), crls }), [secrets.openpgp!.armored], { ...secrets, next: next.secrets }, now);
  }

  /**
   * Roll, second step: the announced keys become the keys, in a record signed by the new and
   * the old key; the old keys are retained for keys.retainDays. ROLL_NOT_ANNOUNCED without an
   * announcement, ROLL_TOO_EARLY before its switchAfter unless `now`.
   */
  async finishRoll(input: string, opts: { now?: boolean } = {}): Promise<DomainRecord> {
    const { current, secrets, now } = await this.#own(input);
    if (!current.next || !secrets.next?.openpgp) throw new MailmeshError('ROLL_NOT_ANNOUNCED', current.domain);
    const switchAfter = current.rollover ? Date.parse(current.rollover.switchAfter) : 0;
    if (!opts.now && now.getTime() < switchAfter) throw new MailmeshError('ROLL_TOO_EARLY', `${current.domain}: switch after ${current.rollover!.switchAfter}`);
    const old: KeySet = { keys: current.keys, secrets: { openpgp: secrets.openpgp, smime: secrets.smime } };
    const content = { ...current, keys: current.next, validity: recordValidity(current.next, now), next: undefined, rollover: undefined };
    const crls = await this.#caCrls({ keys: current.next, secrets: secrets.next }, current.crls, now);
    return this.#commit(
      current,
      content,
      carried(current, { next: undefined, crls }),
      [secrets.next.openpgp.armored, secrets.openpgp!.armored],
      { ...secrets.next, retained: [...(secrets.retained ?? []), retire(old, now, this.#retainDays)] },
      now,
    );
  }

  /**
   * Renew (docs/lifecycle.md "Renew"): the S/MIME leaf certified again by the domain CA with
   * the same key pair; the previous leaf is retained (mail in flight names its issuer and serial).
   */
  async renewSmime(input: string): Promise<DomainRecord> {
    const { current, secrets, now } = await this.#own(input);
    const smime = await renewedLeaf(current.domain, { keys: current.keys, secrets }, { keys: this.#opts.keys, now, crlUrl: this.#opts.crlUrl?.(current.domain) });
    const keys = { ...current.keys, smime };
    const previous: KeySet = { keys: { smime: current.keys.smime }, secrets: { smime: secrets.smime } };
    return this.#commit(
      current,
      { ...current, keys, validity: recordValidity(keys, now) },
      carried(current, {}),
      [secrets.openpgp!.armored],
      { ...secrets, retained: [...(secrets.retained ?? []), retire(previous, now, this.#retainDays)] },
      now,
    );
  }

  /**
   * Revoke (docs/lifecycle.md "Revoke"): new keys at once (compromised: under a new domain CA
   * too); the record carries the revocation certificates of the old OpenPGP keys (current and
   * announced next) and the CRL of the domain CA listing their leaves; the old keys are retained,
   * revoked, to open mail still in flight. Any announced roll ends.
   */
  async revokeKeys(input: string, reason: RevocationReason): Promise<DomainRecord> {
    const { current, secrets, now } = await this.#own(input);
    const old: KeySet = { keys: current.keys, secrets: { openpgp: secrets.openpgp, smime: secrets.smime } };
    const ended = [old, ...(current.next && secrets.next ? [{ keys: current.next, secrets: secrets.next }] : [])];
    // Earlier certificates of the same leaf key pair (renewals) are revoked with it.
    const sameKey = (secrets.retained ?? []).filter((r) => !r.revoked && r.secrets.smime && r.secrets.smime.keyPkcs8Pem === secrets.smime?.keyPkcs8Pem);
    const fresh = await newKeys(current.domain, old, { keys: this.#opts.keys, now, crlUrl: this.#opts.crlUrl?.(current.domain), newCa: reason === 'compromised' });
    const published = await revocations(ended, sameKey, current.crls ?? [], reason, now, domainCa(fresh));
    const retained = (secrets.retained ?? []).map((r) => (sameKey.includes(r) ? { ...r, revoked: true } : r));
    const content = { ...current, keys: fresh.keys, validity: recordValidity(fresh.keys, now), next: undefined, rollover: undefined };
    return this.#commit(
      current,
      content,
      { revocations: carriedRevocations(published.certificates, current.signed?.payload), crls: published.crls },
      [fresh.secrets.openpgp!.armored],
      { ...fresh.secrets, retained: [...retained, ...ended.map((s) => retire(s, now, this.#retainDays, true))] },
      now,
    );
  }

  /** Erases the retained keys of a local domain whose `until` has passed; returns how many. */
  async pruneRetained(input: string): Promise<number> {
    const current = await this.getRecord(input);
    const secrets = await this.getSecrets(current.domain);
    const { kept, erased } = expired(secrets.retained, this.clock());
    if (erased === 0) return 0;
    // The record is written unchanged with the secrets: the store writes both in one transaction.
    const { serial: _serial, ...draft } = current;
    await this.#put(draft, { ifSerial: current.serial, secrets: this.#seal(current.domain, { ...secrets, retained: kept }) });
    return erased;
  }

  get #retainDays(): number {
    return this.#opts.keys.retainDays ?? DEFAULT_RETAIN_DAYS;
  }
}

/** What a re-signed record publishes besides its keys: `extra` where it says, else what `current` published. */
function carried(current: DomainRecord, extra: PayloadExtra): PayloadExtra {
  return {
    next: 'next' in extra ? extra.next : current.next && payloadKeys(current.next),
    revocations: extra.revocations ?? carriedRevocations([], current.signed?.payload),
    crls: 'crls' in extra ? extra.crls : current.crls,
  };
}

function tombstone(r: DomainRecord): DomainRecord {
  return { ...r, keys: {}, signed: undefined, status: 'deleted', next: undefined, rollover: undefined, crls: undefined };
}
