import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { parseAddress, parseDomain, type Domain } from './domain.js';
import { MailmeshError } from './errors.js';
import { generateDomainKeys, type KeyOptions } from './keys.js';
import { ownCapabilities, secretsContext, type DomainRecord, type DomainSecrets, type GatewayEndpoints, type RecordDraft, type TunnelFormat } from './record.js';
import { recordPayload, signPayload, type PayloadKeys } from './signed.js';
import { MASTER_KEY_CHECK_CONTEXT, Sealer } from './seal.js';
import type { Store } from './store/store.js';

export interface DirectoryOptions {
  keys: KeyOptions;
  clock?: () => Date;
}

export interface AddDomainOptions {
  formats?: TunnelFormat[];
  gateways?: GatewayEndpoints;
}

/** A protocol-neutral question the faces (HTTP, DNS, LDAP) translate into. */
export type Lookup = { domain: string } | { address: string } | { fingerprint: string };

/**
 * The directory: domain records and their keys, over any Store. Faces call `lookup` and
 * render the result; they never touch the store. Emits 'change' (DomainRecord) after writes:
 * its own, and on a shared store (Store.subscribe) those of other nodes too.
 */
export class Directory extends EventEmitter<{ change: [DomainRecord] }> {
  readonly store: Store;
  readonly #sealer: Sealer;
  readonly #opts: DirectoryOptions;
  readonly clock: () => Date;
  /** Following other nodes' writes: every serial up to `synced` has been emitted; `own` holds this node's later ones. */
  readonly #follow = { on: false, synced: 0, own: new Set<number>(), dirty: false, running: null as Promise<void> | null };

  private constructor(store: Store, sealer: Sealer, opts: DirectoryOptions) {
    super();
    this.store = store;
    this.#sealer = sealer;
    this.#opts = opts;
    this.clock = opts.clock ?? (() => new Date());
  }

  /**
   * Opens a directory on a store. The first master key to open a store leaves a check value;
   * a different key is refused (MASTER_KEY_MISMATCH) before anything is read or written.
   */
  /** MASTER_KEY_MISMATCH unless the master key opens the store's check value (set by the first opening of an empty store). */
  static async checkMasterKey(store: Store, masterKey: Buffer): Promise<Sealer> {
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

  static async open(store: Store, masterKey: Buffer, opts: DirectoryOptions): Promise<Directory> {
    const d = new Directory(store, await Directory.checkMasterKey(store, masterKey), opts);
    if (store.subscribe) {
      d.#follow.synced = await store.serial();
      d.#follow.on = true;
      await store.subscribe(() => d.#catchUp());
    }
    return d;
  }

  #changed(record: DomainRecord): void {
    if (this.#follow.on) this.#follow.own.add(record.serial);
    this.emit('change', record);
  }

  /**
   * Another node wrote (or notices were lost): emit 'change' for every record written since the
   * last catch-up that this node did not write itself. Reading by serial rather than trusting
   * the notice's content means a lost notice is made up by the next one. Runs one at a time;
   * a failure (store unreachable) leaves `synced` where it was for the next attempt.
   */
  #catchUp(): void {
    const f = this.#follow;
    f.dirty = true;
    f.running ??= (async () => {
      try {
        while (f.dirty) {
          f.dirty = false;
          for (let page = await this.store.listSince(f.synced, 500); page.length; page = await this.store.listSince(f.synced, 500)) {
            for (const r of page) if (!f.own.delete(r.serial)) this.emit('change', r);
            f.synced = page[page.length - 1]!.serial;
          }
          for (const s of f.own) if (s <= f.synced) f.own.delete(s);
        }
      } catch {
        // The store is down: the reconnect notice (Store.subscribe) brings the next attempt.
      } finally {
        f.running = null;
      }
    })();
  }

  /** Creates a member domain with freshly generated keys; refuses an existing one. */
  async addDomain(input: string, opts: AddDomainOptions = {}): Promise<DomainRecord> {
    const domain = parseDomain(input);
    const existing = await this.store.getRecord(domain);
    if (existing && existing.status !== 'deleted') throw new MailmeshError('DOMAIN_EXISTS', domain);
    const now = this.clock();
    const { keys, secrets } = await generateDomainKeys(domain, this.#opts.keys, now);
    const content = {
      domain,
      keys,
      gateways: opts.gateways ?? { smtp: [] },
      formats: opts.formats ?? ['pgp-mime' as const, 'smime' as const],
      capabilities: ownCapabilities(keys),
      validity: { notBefore: now.toISOString(), notAfter: keys.smime?.notAfter ?? keys.openpgp?.expires ?? null },
    };
    // Every record this directory serves for its own domains is signed by the domain key (docs/federation.md).
    const signed = await signPayload(recordPayload(content, now), [secrets.openpgp!.armored], now);
    const record = await this.store.putRecord(
      {
        ...content,
        signed,
        updated: now.toISOString(),
        status: 'active',
        provenance: { source: 'local', verified: 'generated by this directory', at: now.toISOString() },
      },
      { ifSerial: existing ? existing.serial : null, secrets: this.#sealer.seal(Buffer.from(JSON.stringify(secrets)), secretsContext(domain)) },
    );
    this.#changed(record);
    return record;
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
    return (await this.listDomains()).find(
      (r) => r.keys.openpgp?.fingerprint === fpr || r.keys.smime?.fingerprint.toUpperCase() === fpr,
    );
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
    const record = await this.store.putRecord({ ...tombstone(current), updated: now }, { ifSerial: current.serial, secrets: null });
    this.#changed(record);
    return record;
  }

  /**
   * Writes a record that came from elsewhere (joined, imported, mirrored: federation/), keeping
   * the domain's private keys if this directory has any; compare-and-set as Store.putRecord.
   */
  async putRecord(draft: RecordDraft, ifSerial?: number | null): Promise<DomainRecord> {
    const record = await this.store.putRecord(draft, { ifSerial });
    this.#changed(record);
    return record;
  }

  /** Signs a local domain's record again with its own key, e.g. to announce next keys or carry revocations. */
  async resign(input: string, extra: { next?: PayloadKeys; revocations?: string[] } = {}): Promise<DomainRecord> {
    const current = await this.getRecord(input);
    const secrets = await this.getSecrets(current.domain);
    if (!secrets.openpgp) throw new MailmeshError('TUNNEL_NO_KEY', `${current.domain} has no OpenPGP private key here`);
    const now = this.clock();
    // What this software reads now: a record signed before capabilities existed gains them here.
    const content = { ...current, capabilities: ownCapabilities(current.keys) };
    const signed = await signPayload(recordPayload(content, now, extra), [secrets.openpgp.armored], now);
    return this.putRecord({ ...content, signed, updated: now.toISOString() }, current.serial);
  }
}

function tombstone(r: DomainRecord): DomainRecord {
  return { ...r, keys: {}, signed: undefined, status: 'deleted' };
}
